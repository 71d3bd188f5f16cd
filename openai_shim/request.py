"""The body of ``POST /v1/audio/speech``, checked field by field.

OpenAI's fields plus three that other OpenAI-compatible servers accept:
``language``, ``sample_rate`` (pcm and wav only) and ``stream`` (false asks for
the whole body at once, with exact sizes in its headers). Engine sampling
settings (:data:`ENGINE_OPTIONS`) are passed on to the voice's engine when
given, checked here only for their type; an engine refuses those it does not
take. ``instructions`` (a style prompt) goes to the engine the same way, but an
engine that takes none ignores it: OpenAI clients send it with every request.
Other unknown fields are ignored, so clients that send extras keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from wyoming_polytts.common.echo import clip

from .encoder import FORMATS
from .errors import ApiError

DEFAULT_MODEL = "tts-1"
MIN_SPEED = 0.25
MAX_SPEED = 4.0
SAMPLE_RATES = (8_000, 48_000)
"""Lowest and highest ``sample_rate`` (Hz) a pcm or wav response may ask for."""
_RATE_FORMATS = ("pcm", "wav")

ENGINE_OPTIONS: dict[str, type] = {
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "repetition_penalty": float,
    "num_steps": int,
    "guidance_scale": float,
    "t_shift": float,
}
"""Body fields that go to the engine as ``SynthesisRequest.options`` (XTTS sampling,
ZipVoice flow matching), with the JSON type each must have."""


@dataclass(frozen=True)
class SpeechRequest:
    """A checked speech request."""

    input: str
    model: str
    voice: str | None
    """Requested voice name; None means the default voice."""

    response_format: str = "mp3"
    speed: float | None = None
    """Speaking rate factor; None is normal speed."""

    stream_format: Literal["audio", "sse"] = "audio"
    stream: bool = True
    """False: the whole body at once, with exact sizes (not for ``sse``)."""

    language: str | None = None
    sample_rate: int | None = None
    """Hertz asked for a pcm or wav response; None uses the format's default."""

    engine_options: dict[str, Any] = field(default_factory=dict)
    """The :data:`ENGINE_OPTIONS` and ``instructions`` the body gave, for the voice's
    engine to check."""


def parse_speech_request(data: Any, max_input_chars: int) -> SpeechRequest:
    """Check a decoded JSON body; raises :class:`ApiError` (400) naming the bad field."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    text = _get(data, "input", str)
    if text is None or not text.strip():
        raise ApiError(400, "'input' must be a non-empty string", param="input")
    _check_length("input", text, max_input_chars)
    response_format = _get(data, "response_format", str) or "mp3"
    if response_format not in FORMATS:
        raise ApiError(
            400,
            f"'response_format' must be one of {', '.join(FORMATS)}; got {clip(response_format)!r}",
            param="response_format",
        )
    stream_format = _get(data, "stream_format", str) or "audio"
    if stream_format not in ("audio", "sse"):
        raise ApiError(400, "'stream_format' must be 'audio' or 'sse'", param="stream_format")
    return SpeechRequest(
        input=text,
        model=_get(data, "model", str) or DEFAULT_MODEL,
        voice=_voice(data.get("voice")),
        response_format=response_format,
        speed=_speed(data),
        stream_format=cast(Literal["audio", "sse"], stream_format),
        stream=_stream(data, stream_format),
        language=_get(data, "language", str) or None,
        sample_rate=_sample_rate(data, response_format),
        engine_options=_engine_options(data, max_input_chars),
    )


def _get(data: dict[str, Any], name: str, kind: type) -> Any:
    """The field if present and not null; a 400 when it has the wrong type."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        word = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
        raise ApiError(400, f"'{name}' must be {word[kind]}", param=name)
    return value


def _check_length(name: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise ApiError(
            400,
            f"'{name}' is {len(text)} characters long; the limit is {limit}",
            param=name,
            code="string_above_max_length",
        )


def _engine_options(data: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """The engine options given (not null); a whole number is accepted as a number."""
    options: dict[str, Any] = {}
    instructions = _get(data, "instructions", str)
    if instructions and instructions.strip():
        _check_length("instructions", instructions, max_chars)
        options["instructions"] = instructions
    for name, kind in ENGINE_OPTIONS.items():
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(400, f"'{name}' must be a number", param=name)
        if kind is int and not isinstance(value, int):
            raise ApiError(400, f"'{name}' must be a whole number", param=name)
        options[name] = kind(value)
    return options


def _voice(value: Any) -> str | None:
    """A voice name, given as a string or as ``{"id": name}``."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "'voice' must be a string or an object with an 'id'", param="voice")
    return value.strip() or None


def _speed(data: dict[str, Any]) -> float | None:
    value = data.get("speed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, "'speed' must be a number", param="speed")
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise ApiError(
            400, f"'speed' must be from {MIN_SPEED} to {MAX_SPEED}; got {value}", param="speed"
        )
    return None if value == 1 else float(value)


def _stream(data: dict[str, Any], stream_format: str) -> bool:
    stream = _get(data, "stream", bool)
    if stream is False and stream_format == "sse":
        raise ApiError(400, "'stream': false cannot be combined with 'sse'", param="stream")
    return stream is not False


def _sample_rate(data: dict[str, Any], response_format: str) -> int | None:
    rate = _get(data, "sample_rate", int)
    if rate is None:
        return None
    if response_format not in _RATE_FORMATS:
        raise ApiError(
            400,
            f"'sample_rate' applies only to {' and '.join(_RATE_FORMATS)} responses",
            param="sample_rate",
        )
    low, high = SAMPLE_RATES
    if not low <= rate <= high:
        raise ApiError(
            400, f"'sample_rate' must be from {low} to {high} Hz; got {rate}", param="sample_rate"
        )
    return int(rate)

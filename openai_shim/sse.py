"""Server-sent events of a ``stream_format: sse`` speech response, in OpenAI's shapes."""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import ApiError

CONTENT_TYPE = "text/event-stream"


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def audio_delta(audio: bytes) -> bytes:
    """One piece of the encoded audio, base64 in ``speech.audio.delta``."""
    return _event({"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode()})


def audio_done() -> bytes:
    """The final event. No tokens are counted: the usage is all zeros."""
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return _event({"type": "speech.audio.done", "usage": usage})


def error(err: ApiError) -> bytes:
    """A failure after the events began, in place of ``speech.audio.done``."""
    return _event({"type": "error", **err.body()})

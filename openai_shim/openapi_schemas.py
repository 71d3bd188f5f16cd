"""The schemas of the OpenAPI document (see :mod:`openai_shim.openapi`): request bodies
and answers, each written from what the handlers accept and return."""

from __future__ import annotations

from typing import Any

from .encoder import FORMATS
from .request import DEFAULT_MODEL, ENGINE_OPTIONS, MAX_SPEED, MIN_SPEED, SAMPLE_RATES

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"enum": ["invalid_request_error", "server_error"]},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

VOICE_OBJECT = {
    "type": "object",
    "required": ["id", "object", "name", "type", "created_at", "available", "served_as"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "audio.voice"},
        "name": {"type": "string"},
        "type": {"const": "audio_sample"},
        "created_at": {"type": "integer"},
        "languages": {"type": "array", "items": {"type": "string"}},
        "default_language": {"type": ["string", "null"]},
        "transcript": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
        "engines": {"type": "array", "items": {"type": "string"}},
        "available": {"type": "boolean"},
        "error": {"type": ["string", "null"]},
        "served_as": {"type": "array", "items": {"type": "object"}},
    },
}

SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "speech.audio.delta (base64 audio), speech.audio.done, or error",
        }
    },
}
"""One server-sent event (OpenAPI 3.1: the schema describes each event)."""

_VOICE_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}
LIST_OR_TEXT = {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}
VOICE_FIELDS = {
    "display_name": {"type": "string"},
    "transcript": {"type": "string", "description": "What the recording says"},
    "default_language": {"type": "string", "examples": ["en_US"]},
    "description": {"type": "string"},
}
MODEL_LIST = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array"}},
}


def speech_request(max_input_chars: int, models: list[str], voices: list[str]) -> dict[str, Any]:
    """The speech body; every field but ``input`` may be left out or null."""
    low, high = SAMPLE_RATES
    voice = {"anyOf": [{"enum": voices}, {"type": "string"}]}
    optional: dict[str, dict[str, Any]] = {
        "model": {"enum": models, "default": DEFAULT_MODEL},
        "voice": {
            "anyOf": [voice, {"type": "object", "properties": {"id": _nullable(voice)}}],
        },
        "response_format": {"enum": list(FORMATS), "default": "mp3"},
        "speed": {"type": "number", "minimum": MIN_SPEED, "maximum": MAX_SPEED},
        "stream_format": {"enum": ["audio", "sse"], "default": "audio"},
        "stream": {"type": "boolean", "description": "false: the whole body at once"},
        "language": {"type": "string", "examples": ["en_US"]},
        "sample_rate": {
            "type": "integer",
            "minimum": low,
            "maximum": high,
            "description": "Only with response_format pcm or wav",
        },
        "instructions": {
            "type": "string",
            "maxLength": max_input_chars,
            "description": "A style prompt for engines that take one (openai_api "
            "upstreams); ignored by the others",
        },
        **{
            name: {"type": "integer" if kind is int else "number"}
            for name, kind in ENGINE_OPTIONS.items()
        },
    }
    return {
        "type": "object",
        "required": ["input"],
        "properties": {
            "input": {"type": "string", "minLength": 1, "maxLength": max_input_chars},
            **{name: _nullable(schema) for name, schema in optional.items()},
        },
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def voice_listing() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["voices", "library"],
        "properties": {
            "voices": {
                "type": "array",
                "items": {"type": "object", "required": ["id", "name", "engine"]},
            },
            "library": {"type": "object", "required": ["voices", "engines", "limits"]},
        },
    }


def voice_form(max_upload: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _VOICE_NAME,
            "file": {
                "type": "string",
                "contentMediaType": "application/octet-stream",
                "maxLength": max_upload,
                "description": "The recording; also accepted as 'audio' or 'audio_sample'",
            },
            "audio_url": {"type": "string", "format": "uri"},
            "languages": {"type": "string", "description": "Comma-separated"},
            "engines": {"type": "string", "description": "Comma-separated"},
            "type": {"const": "audio_sample"},
            **VOICE_FIELDS,
        },
    }


def voice_json() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _VOICE_NAME,
            "audio": {"type": "string", "contentEncoding": "base64"},
            "audio_url": {"type": "string", "format": "uri"},
            "languages": LIST_OR_TEXT,
            "engines": LIST_OR_TEXT,
            "type": {"const": "audio_sample"},
            **VOICE_FIELDS,
        },
    }

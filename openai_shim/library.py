"""Cloned voices over HTTP: register, read, change and delete voice library entries.

``POST /v1/audio/voices`` takes multipart form data (an audio file plus fields;
the official SDK's ``audio.voices.create(audio_sample=..., name=...)`` is this
shape) or JSON with base64 audio; either may give ``audio_url`` instead when
the server allows URL voices. New voices are usable at once through both front
doors. Answers follow OpenAI's voice objects (``audio.voice``,
``audio.voice.deleted``) with the library's own fields added.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiohttp import BodyPartReader, web

from openai_shim.url_fetch import fetch_audio
from wyoming_polytts.common.json_limits import decode_json
from wyoming_polytts.errors import InvalidRequestError, PayloadTooLargeError
from wyoming_polytts.library.library import LibraryVoice
from wyoming_polytts.library.meta import check_name, parse_meta
from wyoming_polytts.speech.catalog import CatalogVoice

from .body import FORM, JSON, body_deadline, read_body, read_json, require_type
from .state import CATALOG, LIBRARY, POOL, SETTINGS

_TEXT_FIELDS = ("name", "display_name", "transcript", "default_language", "description", "type")
_AUDIO_FIELDS = ("file", "audio", "audio_sample")
_LIST_FIELDS = ("languages", "engines")
_FIELD_BYTES = 64 * 1024
"""Longest text field accepted in a form."""


async def create_voice(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].voice_library
    limit = settings.max_upload_bytes
    if require_type(request, FORM, JSON) == FORM:
        async with body_deadline(request):
            fields, audio = await _read_form(request, limit)
    else:
        fields, audio = _from_json(await read_body(request, limit * 4 // 3 + _FIELD_BYTES))
    if fields.get("type", "audio_sample") != "audio_sample":
        raise InvalidRequestError("only voices from an audio sample can be created here")
    name = fields.pop("name", None)
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("'name' is required: the new voice's name")
    check_name(name)
    meta = parse_meta(
        {
            "name": fields.get("display_name"),
            "languages": _as_list(fields.get("languages"), "languages"),
            "default_language": fields.get("default_language"),
            "transcript": fields.get("transcript"),
            "description": fields.get("description"),
            "engines": _as_list(fields.get("engines"), "engines"),
        }
    )
    url = fields.pop("audio_url", None)
    if audio is None and url is not None:
        if not settings.allow_url_voices:
            raise InvalidRequestError("'audio_url' is turned off (voice_library.allow_url_voices)")
        if not isinstance(url, str):
            raise InvalidRequestError("'audio_url' must be text: an http(s) URL")
        audio = await fetch_audio(url, limit, settings.url_timeout)
    if audio is None:
        raise InvalidRequestError("give the reference recording as 'file' (form) or 'audio' (JSON)")
    voice = await asyncio.to_thread(request.app[LIBRARY].add, name, audio, meta)
    request.app[CATALOG].invalidate()  # usable at once, through both front doors
    return web.json_response(_describe_one(request, voice), status=201)


async def get_voice(request: web.Request) -> web.Response:
    voice = request.app[LIBRARY].get(request.match_info["voice_id"])
    return web.json_response(_describe_one(request, voice))


async def update_voice(request: web.Request) -> web.Response:
    changes = await read_json(request, _FIELD_BYTES)
    if not isinstance(changes, dict):
        raise InvalidRequestError("the body must be a JSON object of fields to change")
    if "display_name" in changes:
        changes["name"] = changes.pop("display_name")
    library = request.app[LIBRARY]
    voice = await asyncio.to_thread(library.update, request.match_info["voice_id"], changes)
    request.app[CATALOG].invalidate()
    return web.json_response(_describe_one(request, voice))


async def delete_voice(request: web.Request) -> web.Response:
    voice_id = request.match_info["voice_id"]
    await asyncio.to_thread(request.app[LIBRARY].remove, voice_id)
    request.app[CATALOG].invalidate()
    return web.json_response({"id": voice_id, "object": "audio.voice.deleted", "deleted": True})


def library_listing(request: web.Request, catalog: list[CatalogVoice]) -> dict[str, Any]:
    """The voice library as ``GET /v1/audio/voices`` adds it: every library voice (usable
    or not), the engines that clone with their needs, and the recording limits."""
    engines = request.app[POOL].engines
    cloning = {name: e.capabilities for name, e in engines.items() if e.capabilities.cloning}
    limits = request.app[SETTINGS].voice_library
    return {
        "voices": [
            _describe(voice, catalog, set(cloning)) for voice in request.app[LIBRARY].voices()
        ],
        "engines": [
            {"engine": name, "needs_transcript": caps.needs_transcript}
            for name, caps in cloning.items()
        ],
        "limits": {
            "min_seconds": limits.min_seconds,
            "max_seconds": limits.max_seconds,
            "max_upload_bytes": limits.max_upload_bytes,
        },
    }


def _describe_one(request: web.Request, voice: LibraryVoice) -> dict[str, Any]:
    return _describe(voice, request.app[CATALOG].voices(), _cloning_engines(request))


def _describe(
    voice: LibraryVoice, catalog: list[CatalogVoice], cloning: set[str]
) -> dict[str, Any]:
    """A library voice, with the catalog names it is served under."""
    meta = asdict(voice.meta)
    del meta["audio"]
    display_name = meta.pop("name") or voice.id
    served = [
        {"voice": v.name, "engine": v.engine}
        for v in catalog
        if v.info.id == voice.id and v.engine in cloning
    ]
    return {
        "id": voice.id,
        "object": "audio.voice",
        "name": display_name,
        "type": "audio_sample",
        "created_at": _unix_time(voice.meta.created),
        **meta,
        "available": voice.error is None,
        "error": voice.error,
        "served_as": served,
    }


def _unix_time(iso: str | None) -> int:
    """Seconds since the epoch of an ISO 8601 time; 0 when absent or unreadable."""
    try:
        return int(datetime.fromisoformat(iso).timestamp()) if iso else 0
    except ValueError:
        return 0


def _cloning_engines(request: web.Request) -> set[str]:
    engines = request.app[POOL].engines
    return {name for name, engine in engines.items() if engine.capabilities.cloning}


async def _read_form(request: web.Request, limit: int) -> tuple[dict[str, Any], bytes | None]:
    if (request.content_length or 0) > limit + _FIELD_BYTES * 8:
        raise PayloadTooLargeError(f"the upload is over the limit of {limit} bytes")
    fields: dict[str, Any] = {}
    audio: bytes | None = None
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is not None or part.name in _AUDIO_FIELDS:
            audio = await _read_part(part, limit)
        elif part.name in (*_TEXT_FIELDS, *_LIST_FIELDS, "audio_url"):
            text = (await _read_part(part, _FIELD_BYTES)).decode("utf-8", errors="replace")
            if part.name in _LIST_FIELDS:
                fields.setdefault(part.name, []).extend(_split(text))
            else:
                fields[part.name] = text
    return fields, audio


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data.extend(chunk)
        if len(data) > limit:
            raise PayloadTooLargeError(f"'{part.name}' is over the limit of {limit} bytes")
    return bytes(data)


def _from_json(body: bytes) -> tuple[dict[str, Any], bytes | None]:
    data = decode_json(body)
    if not isinstance(data, dict):
        raise InvalidRequestError("the body must be a JSON object")
    encoded = data.pop("audio", None)
    if encoded is None:
        return data, None
    if not isinstance(encoded, str):
        raise InvalidRequestError("'audio' must be base64 text")
    try:
        return data, base64.b64decode(encoded.split(",", 1)[-1], validate=True)
    except ValueError as err:  # binascii.Error, or text that is not ASCII
        raise InvalidRequestError(f"'audio' is not valid base64: {err}") from err


def _as_list(value: Any, name: str) -> list[str]:
    """A list field given as a JSON list or as comma-separated text."""
    if value is None:
        return []
    if isinstance(value, str):
        return _split(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise InvalidRequestError(f"'{name}' must be a list of strings or comma-separated text")


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]

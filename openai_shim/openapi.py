"""``GET /openapi.json``: an OpenAPI 3.1 description of every endpoint of the app.

Written by hand from what the handlers accept and answer, and built per request
from the running configuration, so its limits (longest ``input``, body and
upload sizes) and its lists (models, voices, formats) are the server's own.
Every error is documented in OpenAI's shape (``components.schemas.Error``); the
schemas themselves are in :mod:`openai_shim.openapi_schemas`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from wyoming_polytts import __version__
from wyoming_polytts.const import PROGRAM_NAME

from .encoder import FORMATS
from .openapi_schemas import (
    ERROR,
    LIST_OR_TEXT,
    MODEL_LIST,
    SSE_EVENT,
    VOICE_FIELDS,
    VOICE_OBJECT,
    speech_request,
    voice_form,
    voice_json,
    voice_listing,
)
from .sse import CONTENT_TYPE as SSE_TYPE
from .state import CATALOG, RESOLVER, SETTINGS
from .voices import OPENAI_VOICES

_REASONS = {
    400: "The request is invalid (the message names the field)",
    401: "Missing or incorrect API key",
    403: "Refused: a Host that is not this server, a web page elsewhere (Origin), or "
    "changing voices without an API key on a public address",
    404: "No such model, voice or path",
    405: "Method not allowed",
    408: "The body did not arrive within openai.body_timeout",
    409: "A voice with that name exists",
    413: "The body or an uploaded file is over its limit",
    415: "The body's Content-Type is not one this operation takes",
    500: "The engine failed",
    503: "The engine is busy, loading or unavailable; retry later",
    504: "The engine gave no audio within pool.job_timeout",
    507: "The disk holding the voice library is full",
}


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request))


def build_openapi(request: web.Request) -> dict[str, Any]:
    """The document for this app, with the running configuration's limits and names."""
    app = request.app
    settings = app[SETTINGS]
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"{PROGRAM_NAME} OpenAI-compatible API", "version": __version__},
        "paths": _paths(
            settings.max_input_chars,
            models=app[RESOLVER].model_ids(),
            voices=sorted({v.name for v in app[CATALOG].voices()} | OPENAI_VOICES),
            max_upload=settings.voice_library.max_upload_bytes,
        ),
        "components": {"schemas": {"Error": ERROR, "Voice": VOICE_OBJECT}},
    }
    if settings.api_keys:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}, {}]  # reading stays open; see middleware
    return document


def _paths(
    max_input_chars: int, models: list[str], voices: list[str], max_upload: int
) -> dict[str, Any]:
    voice_id = [{"name": "voice_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "/v1/audio/speech": {
            "post": {
                "summary": "Speak text",
                "requestBody": _json_body(speech_request(max_input_chars, models, voices)),
                "responses": {
                    "200": {
                        "description": "Audio in the requested format, or server-sent events",
                        "content": {
                            **{f.content_type: _binary() for f in FORMATS.values()},
                            SSE_TYPE: {"schema": SSE_EVENT},
                        },
                    },
                    **_errors(400, 401, 403, 404, 408, 413, 415, 500, 503, 504),
                },
            }
        },
        "/v1/audio/voices": {
            "get": {
                "summary": "Every voice, and the voice library",
                "responses": {"200": _json_answer(voice_listing())},
            },
            "post": {
                "summary": "Register a cloned voice from a recording",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {"schema": voice_form(max_upload)},
                        "application/json": {"schema": voice_json()},
                    },
                },
                "responses": {
                    "201": _json_answer({"$ref": "#/components/schemas/Voice"}),
                    **_errors(400, 401, 403, 408, 409, 413, 415, 507),
                },
            },
        },
        "/v1/audio/voices/{voice_id}": {
            "parameters": voice_id,
            "get": {
                "summary": "One library voice",
                "responses": {
                    "200": _json_answer({"$ref": "#/components/schemas/Voice"}),
                    **_errors(400, 403, 404),
                },
            },
            "patch": {
                "summary": "Change a library voice's details",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            **VOICE_FIELDS,
                            "languages": LIST_OR_TEXT,
                            "engines": LIST_OR_TEXT,
                        },
                        "additionalProperties": False,
                    }
                ),
                "responses": {
                    "200": _json_answer({"$ref": "#/components/schemas/Voice"}),
                    **_errors(400, 401, 403, 404, 408, 413, 415, 507),
                },
            },
            "delete": {
                "summary": "Delete a library voice",
                "responses": {
                    "200": _json_answer(
                        {
                            "type": "object",
                            "required": ["id", "object", "deleted"],
                            "properties": {
                                "id": {"type": "string"},
                                "object": {"const": "audio.voice.deleted"},
                                "deleted": {"const": True},
                            },
                        }
                    ),
                    **_errors(400, 401, 403, 404),
                },
            },
        },
        "/v1/audio/models": _get("Models, as Open WebUI reads them", {"type": "object"}),
        "/v1/models": _get("Models, in OpenAI's list format", MODEL_LIST),
        "/health": _get(
            "Every engine's state", {"type": "object", "required": ["status", "ready"]}
        ),
        "/metrics": _get("Prometheus metrics", None, "text/plain"),
        "/openapi.json": _get("This document", {"type": "object"}),
        "/": _get("The web page", None, "text/html"),
        "/web/{name}": {
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "summary": "A script, style sheet or icon of the web page",
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {
                            t: {"schema": {"type": "string"}}
                            for t in ("text/javascript", "text/css", "image/svg+xml")
                        },
                    },
                    **_errors(403, 404),
                },
            },
        },
    }


def _get(summary: str, schema: dict[str, Any] | None, kind: str = "application/json") -> dict:
    body = {"schema": schema if schema is not None else {"type": "string"}}
    return {
        "get": {
            "summary": summary,
            "responses": {
                "200": {"description": summary, "content": {kind: body}},
                **_errors(403),
            },
        }
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _json_answer(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _binary() -> dict[str, Any]:
    return {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}


def _errors(*statuses: int) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {str(status): {"description": _REASONS[status], "content": error} for status in statuses}

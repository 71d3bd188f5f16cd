"""The listing endpoints and the route table.

``GET /v1/audio/voices`` and ``GET /v1/audio/models`` answer in the shapes Open
WebUI reads (``{"voices": [{"id", "name"}]}``, ``{"models": [{"id"}]}``);
``GET /v1/models`` in OpenAI's list format. The web page is at ``/``, the
OpenAPI document at ``/openapi.json``.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from wyoming_polytts.const import PROGRAM_NAME
from wyoming_polytts.pool.slot import EngineState

from .library import create_voice, delete_voice, get_voice, library_listing, update_voice
from .metrics import metrics
from .openapi import openapi_json
from .speech import create_speech
from .state import CATALOG, POOL, RESOLVER, STARTED
from .web import asset, index


async def list_voices(request: web.Request) -> web.Response:
    """Every catalog voice, and the voice library (cloned voices, cloning engines)."""
    catalog = request.app[CATALOG].refresh()
    voices = [
        {
            "id": voice.name,
            "name": voice.name,
            "engine": voice.engine,
            "languages": voice.info.languages,
            "description": voice.info.description,
            "installed": voice.info.installed,
            "reason": voice.info.reason,
        }
        for voice in catalog
    ]
    return web.json_response({"voices": voices, "library": library_listing(request, catalog)})


async def list_audio_models(request: web.Request) -> web.Response:
    models = [{"id": model} for model in request.app[RESOLVER].model_ids()]
    return web.json_response({"models": models})


async def list_models(request: web.Request) -> web.Response:
    created = request.app[STARTED]
    models = [
        {"id": model, "object": "model", "created": created, "owned_by": PROGRAM_NAME}
        for model in request.app[RESOLVER].model_ids()
    ]
    return web.json_response({"object": "list", "data": models})


async def health(request: web.Request) -> web.Response:
    """Every engine's state (unloaded, loading, loaded, unloading, failed), memory and load;
    "degraded" when one failed, is stuck in a sentence, or reports a problem; "ready" once
    the engines to preload have loaded or failed."""
    pool = request.app[POOL]
    engines = {name: dataclasses.asdict(pool.status(name)) for name in pool.engines}
    for name, engine in pool.engines.items():
        if (detail := engine.health()) is not None:  # e.g. a Wyoming upstream's link
            engines[name]["detail"] = detail
    failed = any(
        status["state"] is EngineState.FAILED
        or status["stuck"]  # inside an engine call past pool.job_timeout
        or not status.get("detail", {}).get("ok", True)
        for status in engines.values()
    )
    return web.json_response(
        {
            "status": "degraded" if failed else "ok",
            "ready": pool.ready,
            "engines": engines,
            "memory_budget": pool.memory_budget,
        }
    )


ROUTES = [
    web.post("/v1/audio/speech", create_speech),
    web.get("/v1/audio/voices", list_voices),
    web.post("/v1/audio/voices", create_voice),
    web.get("/v1/audio/voices/{voice_id}", get_voice),
    web.patch("/v1/audio/voices/{voice_id}", update_voice),
    web.delete("/v1/audio/voices/{voice_id}", delete_voice),
    web.get("/v1/audio/models", list_audio_models),
    web.get("/v1/models", list_models),
    web.get("/health", health),
    web.get("/metrics", metrics),
    web.get("/openapi.json", openapi_json),
    web.get("/", index),
    web.get("/web/{name}", asset),
]

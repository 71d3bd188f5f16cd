"""``GET /metrics``: the pool's Prometheus metrics, in the text format, open like ``/health``."""

from __future__ import annotations

from aiohttp import hdrs, web

from wyoming_polytts.pool.metrics import CONTENT_TYPE

from .state import POOL


async def metrics(request: web.Request) -> web.Response:
    body = request.app[POOL].metrics.render()
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})

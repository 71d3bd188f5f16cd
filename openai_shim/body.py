"""Request bodies: the media type each route takes, read within a size and a time limit.

Only ``application/json`` (and ``multipart/form-data`` for uploads) is accepted, so a
web page elsewhere cannot send a body as a CORS "simple request" (``text/plain``,
form-urlencoded) without a preflight. A body must arrive within
``openai.body_timeout`` of the handler starting to read it; a client that stalls
gets 408 and its connection is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import hdrs, web

from openai_shim.bounded_read import read_bounded
from wyoming_polytts.common.echo import clip
from wyoming_polytts.common.json_limits import decode_json

from .errors import ApiError
from .state import SETTINGS

JSON = "application/json"
FORM = "multipart/form-data"

_HOW = {JSON: "a JSON body (application/json)", FORM: "a form (multipart/form-data)"}


def require_type(request: web.Request, *accepted: str) -> str:
    """The body's media type (parameters such as charset ignored) if it is one of
    ``accepted``; else 415 saying what to send."""
    kind = request.content_type
    if kind in accepted:
        return kind
    given = request.headers.get(hdrs.CONTENT_TYPE)
    got = f"Content-Type {clip(given, 60)!r}" if given else "no Content-Type"
    raise ApiError(
        415,
        f"send {' or '.join(_HOW[a] for a in accepted)}; got {got}",
        code="unsupported_media_type",
    )


@asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    """Reading inside the block must end within ``body_timeout``; else 408, connection closed."""
    seconds = request.app[SETTINGS].body_timeout
    try:
        async with asyncio.timeout(seconds) as deadline:
            yield
    except TimeoutError as err:
        if not deadline.expired():
            raise
        raise ApiError(
            408,
            f"the request body did not arrive within {seconds:g} s",
            code="request_timeout",
            close=True,
        ) from err


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body: 413 past ``limit`` bytes, 408 past the time limit."""
    async with body_deadline(request):
        return await read_bounded(
            request.content, request.content_length, limit, "the request body"
        )


async def read_json(request: web.Request, limit: int) -> Any:
    """The decoded JSON body of a JSON-only route (415, 413, 408, or 400 when not JSON)."""
    require_type(request, JSON)
    return decode_json(await read_body(request, limit))

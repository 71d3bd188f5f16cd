"""Read an HTTP body (a request's or a response's) without exceeding a size limit."""

from __future__ import annotations

import aiohttp

from wyoming_polytts.errors import PayloadTooLargeError

_CHUNK = 64 * 1024


async def read_bounded(
    content: aiohttp.StreamReader, declared: int | None, limit: int, what: str
) -> bytes:
    """All of ``content``; a 413 as soon as it (or its declared length) passes ``limit``.

    ``what`` names the body in the error, e.g. "the request body".
    """
    if (declared or 0) > limit:
        raise PayloadTooLargeError(f"{what} is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in content.iter_chunked(_CHUNK):
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLargeError(f"{what} is over the limit of {limit} bytes")
    return bytes(body)

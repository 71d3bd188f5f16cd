"""Request middleware: errors as OpenAI JSON, API keys, the voice management lock, CORS.

The Host and Origin checks are in :mod:`.browser_safety`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from wyoming_polytts.common.echo import clip
from wyoming_polytts.errors import PolyttsError

from .errors import ApiError

_LOGGER = logging.getLogger(__name__)

READ_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})
"""Methods that change nothing; every other one registers, changes or synthesizes."""

VOICES_PATH = "/v1/audio/voices"
"""The voice library's routes: this path and those below it."""

Exempt = Callable[[web.Request], bool]
"""Whether a request is exempt from a check (one a trusted proxy vouches for)."""

_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
"""OpenAI-style codes for aiohttp's own HTTP errors."""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure before the response starts with OpenAI's error JSON."""
    try:
        return await handler(request)
    except ApiError as err:
        if err.close:
            return await _answer_and_close(request, err.response())
        return err.response()
    except PolyttsError as err:
        _LOGGER.info("Request failed (%s): %s", err.code, err)
        return ApiError.from_polytts(err).response()
    except web.HTTPException as err:
        if err.status < 400:
            raise
        message = err.text or err.reason
        return ApiError(err.status, message, code=_CODES.get(err.status)).response()
    except HttpProcessingError as err:  # a body aiohttp cannot parse (e.g. a form part's headers)
        status = err.code if 400 <= err.code < 500 else 400
        return ApiError(status, f"malformed request body: {clip(err.message)}").response()
    except Exception as err:  # a bug must still reach the client as an OpenAI error
        _LOGGER.exception(
            "Unexpected error on %s %s", request.method, clip(request.rel_url.raw_path)
        )
        # Only the type: the message may hold server paths (e.g. a FileNotFoundError's).
        return ApiError(
            500, f"internal error ({type(err).__name__}); see the server log"
        ).response()


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` and close the connection at once: aiohttp would otherwise keep
    reading the rest of an unfinished body for up to 10 s before closing."""
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def auth_middleware(api_keys: tuple[str, ...], exempt: Exempt) -> Middleware:
    """Require ``Authorization: Bearer <key>`` on requests that synthesize or change voices,
    unless ``exempt`` (a trusted proxy authenticated the user).

    Reading (listings, health) stays open: it reveals only voice and engine names,
    and some clients (Open WebUI) fetch voices without a key.
    """
    keys = [key.encode() for key in api_keys]

    @web.middleware
    async def check_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.method not in READ_METHODS
            and not _authorized(request, keys)
            and not exempt(request)
        ):
            raise ApiError(
                401,
                "missing or incorrect API key; send it as 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        return await handler(request)

    return check_key


def voice_management_lock(host: str, exempt: Exempt) -> Middleware:
    """Refuse (403) registering, changing and deleting voices: the API listens on ``host``,
    beyond this machine, and no API key is set. Speech stays open."""

    @web.middleware
    async def lock(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.method not in READ_METHODS
            and request.path.startswith(VOICES_PATH)
            and not exempt(request)
        ):
            raise ApiError(
                403,
                f"changing voices needs an API key when the API listens on {host}: set "
                "openai.api_keys (the add-on's openai_api_key option) and send the key as "
                "'Authorization: Bearer <key>', or set openai.open_voice_management: true",
                code="voice_management_locked",
            )
        return await handler(request)

    return lock


def _authorized(request: web.Request, keys: list[bytes]) -> bool:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    given = token.strip().encode() if scheme.lower() == "bearer" else b""
    matched = False
    for key in keys:  # compare with every key, in constant time each
        matched |= hmac.compare_digest(given, key)
    return matched


class Cors:
    """CORS for the configured origins: preflight answers and headers on every response."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self._any = "*" in origins
        self._origins = frozenset(origins)

    def allowed(self, request: web.Request) -> str | None:
        """The value of ``Access-Control-Allow-Origin`` for this request, if any."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return None
        if self._any:
            return "*"
        return origin if origin in self._origins else None

    @web.middleware
    async def preflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer a preflight (before any API key check, as browsers send none)."""
        if (
            request.method == hdrs.METH_OPTIONS
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
            and self.allowed(request)
        ):
            requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
            return web.Response(
                status=204,
                headers={
                    hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, PATCH, DELETE, OPTIONS",
                    hdrs.ACCESS_CONTROL_ALLOW_HEADERS: requested or "Authorization, Content-Type",
                    hdrs.ACCESS_CONTROL_MAX_AGE: "600",
                },
            )
        return await handler(request)

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """``on_response_prepare`` hook: runs before the headers of any response leave."""
        origin = self.allowed(request)
        if origin is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            if origin != "*":
                response.headers.add(hdrs.VARY, hdrs.ORIGIN)

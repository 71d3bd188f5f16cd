"""The aiohttp application and its HTTP server, beside the Wyoming server."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from wyoming_polytts.config import Config
from wyoming_polytts.errors import ConfigError
from wyoming_polytts.library.library import VoiceLibrary
from wyoming_polytts.net.clients import Clients
from wyoming_polytts.net.in_flight import InFlight
from wyoming_polytts.net.listener import Listener, bind_tcp
from wyoming_polytts.pool.pool import EnginePool
from wyoming_polytts.speech.catalog import Catalog

from .access_log import AccessLog
from .browser_safety import BrowserGuard
from .middleware import (
    Cors,
    Middleware,
    auth_middleware,
    error_middleware,
    voice_management_lock,
)
from .routes import ROUTES
from .server import HttpServer, refusal, serving
from .settings import ShimSettings
from .state import CATALOG, IN_FLIGHT, LIBRARY, POOL, RESOLVER, SETTINGS, STARTED
from .voices import VoiceResolver

_LOGGER = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 0.25
"""Seconds handlers still running when the server closes get before they are cancelled."""


def create_app(
    pool: EnginePool,
    catalog: Catalog,
    library: VoiceLibrary,
    settings: ShimSettings,
    in_flight: InFlight | None = None,
) -> web.Application:
    """The OpenAI-compatible API on ``pool``, ``catalog`` and the voice ``library``;
    speech requests are counted in ``in_flight`` (shared with Wyoming) for shutdowns."""
    guard = BrowserGuard(settings)
    middlewares: list[Middleware] = [error_middleware, guard.check_host]
    cors = Cors(settings.cors_origins) if settings.cors_origins else None
    if cors is not None:
        middlewares.append(cors.preflight)
    middlewares.append(guard.check_origin)
    if settings.api_keys:
        middlewares.append(auth_middleware(settings.api_keys, guard.via_ingress))
    elif settings.lock_voice_management:
        middlewares.append(voice_management_lock(settings.host, guard.via_ingress))
        _LOGGER.warning(
            "Changing voices over HTTP is refused: the API listens on %s without API keys "
            "(set openai.api_keys, or openai.open_voice_management: true)",
            settings.host,
        )
    app = web.Application(
        middlewares=middlewares,
        client_max_size=settings.max_body_bytes,
        handler_args={"access_log_class": AccessLog},
    )
    app[POOL] = pool
    app[CATALOG] = catalog
    app[LIBRARY] = library
    app[SETTINGS] = settings
    app[RESOLVER] = VoiceResolver(catalog, pool.engines, settings.voice_aliases)
    app[STARTED] = int(time.time())
    app[IN_FLIGHT] = in_flight if in_flight is not None else InFlight()
    if cors is not None:
        app.on_response_prepare.append(cors.add_headers)
    app.router.add_routes(ROUTES)
    return app


async def start_http(
    pool: EnginePool, catalog: Catalog, library: VoiceLibrary, config: Config, clients: Clients
) -> HttpServer:
    """Serve the API where ``openai.host``/``openai.port`` say; the caller closes it.

    Connections count against the ``limits`` of ``clients`` (shared with Wyoming).
    Handlers are cancelled when their client disconnects, which cancels their synthesis.
    A client that has not sent complete headers ``openai.header_timeout`` seconds after
    connecting (or after its previous response) is disconnected: aiohttp's keep-alive
    timer also runs while a request's headers are still arriving. A shutdown lets speech
    requests finish (see :mod:`wyoming_polytts.shutdown`); other handlers still running
    when the server closes get :data:`_CLOSE_TIMEOUT` seconds.
    """
    settings = config.settings.openai
    app = create_app(pool, catalog, library, ShimSettings.from_config(config), clients.in_flight)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=_CLOSE_TIMEOUT,
        keepalive_timeout=settings.header_timeout,
    )
    await runner.setup()
    try:
        sockets = bind_tcp(settings.host, settings.port)
    except OSError as err:
        await runner.cleanup()
        raise ConfigError(
            f"openai: cannot listen on {settings.host}:{settings.port} ({err.strerror})"
        ) from err
    listener = Listener("HTTP", sockets, clients.connections, serving(runner), refusal)
    listener.start()
    _LOGGER.info("OpenAI-compatible API on http://%s:%s/v1", settings.host, listener.port)
    if not settings.api_keys and settings.host not in ("127.0.0.1", "localhost", "::1"):
        _LOGGER.warning("The OpenAI API listens on %s without API keys", settings.host)
    return HttpServer(runner, listener)

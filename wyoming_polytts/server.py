"""Process assembly: engines, pool and catalog behind the Wyoming and OpenAI servers."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse

from openai_shim import start_http

from .config import Config
from .engines import create_engines
from .engines.base import EngineContext
from .errors import ConfigError
from .library.library import VoiceLibrary
from .library.reference_audio import AudioLimits
from .net.clients import Clients
from .net.listener import raise_file_limit
from .pool.memory import format_bytes, resolve_budget
from .pool.pool import EnginePool, LifecycleSettings
from .shutdown import stop_serving
from .speech.catalog import Catalog
from .wyoming.handler import HandlerSettings
from .wyoming.server import WyomingServer

_LOGGER = logging.getLogger(__name__)


def build_library(config: Config) -> VoiceLibrary:
    """The voice library in the configured voices folder."""
    settings = config.settings.voice_library
    limits = AudioLimits(
        rate=settings.sample_rate,
        min_seconds=settings.min_seconds,
        max_seconds=settings.max_seconds,
        max_bytes=settings.max_upload_bytes,
    )
    return VoiceLibrary(config.voices_dir, limits)


def build_pool(config: Config, library: VoiceLibrary) -> EnginePool:
    """Create every enabled engine (not loaded yet) inside a pool."""
    context = EngineContext(
        cache_dir=config.cache_dir,
        voices_dir=config.voices_dir,
        threads=config.threads,
        base_dir=config.base_dir,
        reference_voices=library,
    )
    engines = create_engines(config.engine_options, context, config.settings.ray)
    settings = config.settings.pool
    lifecycle = LifecycleSettings(
        memory_budget=resolve_budget(settings.gpu_memory_budget, "pool.gpu_memory_budget"),
        load_wait=settings.load_wait,
        retry_after=settings.load_retry_after,
    )
    return EnginePool(
        engines, settings.queue_size, lifecycle, settings.job_timeout, settings.heap_trim_interval
    )


async def serve(config: Config, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then let requests in progress finish within
    ``shutdown_grace`` (see :mod:`.shutdown`); engines load in the background meanwhile."""
    settings = config.settings
    raise_file_limit()
    library = build_library(config)
    library.cleanup()
    pool = build_pool(config, library)
    catalog = Catalog(pool, settings.default_voice, settings.catalog_refresh_interval)
    clients = Clients(settings.limits)
    pool.metrics.watch_clients(clients.held)
    await pool.prepare()
    http = (
        await start_http(pool, catalog, library, config, clients)
        if settings.openai.enabled
        else None
    )
    wyoming = WyomingServer(catalog, pool, HandlerSettings.from_config(config), clients)
    try:
        await wyoming.start(settings.wyoming.uri, on_stdio_end=stop.set)
    except ConfigError:
        if http is not None:
            await http.close()
        raise
    _LOGGER.info("Wyoming server listening on %s", settings.wyoming.uri)
    loading = asyncio.create_task(_load(pool, catalog))
    try:
        if settings.wyoming.zeroconf:
            await _announce(settings.wyoming.uri, settings.wyoming.zeroconf_name)
        await stop.wait()
    finally:
        loading.cancel()
        await stop_serving(wyoming, http, pool, clients.in_flight, settings.shutdown_grace)


async def _load(pool: EnginePool, catalog: Catalog) -> None:
    """Start the engine lifecycle: preload what is configured so, watch for idle engines."""
    if pool.memory_budget is not None:
        _LOGGER.info("Memory budget for loaded engines: %s", format_bytes(pool.memory_budget))
    await pool.start(pool.preloaded)
    names = {name for v in catalog.voices() for name in (v.name, v.qualified_name, v.info.id)}
    if catalog.default_voice not in names:
        _LOGGER.warning("The default voice %s is not in the catalog", catalog.default_voice)
    _LOGGER.info("Ready: %s voices", len(catalog.voices()))


def announced_host(uri: str) -> str | None:
    """The address to announce for a listen URI; None lets zeroconf find this machine's
    own address (a server listening on every interface is never announced as 0.0.0.0)."""
    host = urlparse(uri).hostname
    return None if host in (None, "", "0.0.0.0", "::") else host


async def _announce(uri: str, name: str | None) -> None:
    """Advertise ``_wyoming._tcp`` with a real address of this machine."""
    from wyoming.zeroconf import HomeAssistantZeroconf

    parsed = urlparse(uri)
    if parsed.scheme != "tcp" or parsed.port is None:
        _LOGGER.warning("Zeroconf needs a tcp:// URI; not announcing %s", uri)
        return
    host = announced_host(uri)
    try:
        zeroconf = HomeAssistantZeroconf(port=parsed.port, name=name, host=host)
        await zeroconf.register_server()
    except OSError as err:
        _LOGGER.warning("Zeroconf announcement failed (%s); add the server by hand", err)
        return
    _LOGGER.info(
        "Announced over zeroconf as %s at %s:%s", zeroconf.name, zeroconf.host, parsed.port
    )

"""Typed keys of what the application shares with its handlers."""

from __future__ import annotations

from aiohttp import web

from wyoming_polytts.library.library import VoiceLibrary
from wyoming_polytts.net.in_flight import InFlight
from wyoming_polytts.pool.pool import EnginePool
from wyoming_polytts.speech.catalog import Catalog

from .settings import ShimSettings
from .voices import VoiceResolver

POOL = web.AppKey("pool", EnginePool)
CATALOG = web.AppKey("catalog", Catalog)
LIBRARY = web.AppKey("library", VoiceLibrary)
SETTINGS = web.AppKey("settings", ShimSettings)
RESOLVER = web.AppKey("resolver", VoiceResolver)
STARTED = web.AppKey("started", int)
"""Unix time the app was created: the ``created`` of every model entry."""
IN_FLIGHT = web.AppKey("in_flight", InFlight)
"""Speech requests being answered, which a shutdown lets finish, then cuts off."""

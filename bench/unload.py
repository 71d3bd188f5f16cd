"""Memory given back by idle unloading: our server loaded and idle, at its peak under a
paragraph and a burst of clients, and once ``idle_unload_after`` has unloaded its engines.

A server of its own (the run's config, with a short ``idle_unload_after`` for every
engine), so the main run's measurements never see an engine unload between cases.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psutil

from .memory import MemorySampler
from .server_figures import get_json
from .server_process import ServerProcess
from .services import derived_config
from .sweep import run_level
from .texts import TEXTS
from .wyoming_client import one_shot

IDLE_AFTER = 3.0
"""Seconds of idleness after which the engines unload in this measurement."""

_WAIT = 60.0
_SETTLE = 1.0
"""Seconds after the unload for the allocator to hand memory back."""


async def measure_unload(
    config: Path, overrides: dict[str, Any], engines: list[str], work: Path
) -> dict[str, int]:
    """Resident bytes of our server on ``config`` (with the run's ``overrides``) whose
    ``engines`` unload after :data:`IDLE_AFTER` seconds idle."""
    idle = {f"engines.{name}.idle_unload_after": IDLE_AFTER for name in engines}
    with derived_config(config, {**overrides, **idle}) as path:
        server = ServerProcess(work, source=["--config", str(path)])
        server.spawn()
        try:
            await server.wait_ready()
            process = psutil.Process(server.pid)
            loaded = process.memory_info().rss
            sampler = MemorySampler(server.pid).start()
            paragraph = next(t.text for t in TEXTS if t.kind == "long")
            await one_shot(server.port, paragraph, None)
            await run_level(server.port, None, [t.text for t in TEXTS if t.kind == "answer"], 8)
            sampler.stop()
            await _until_unloaded(server.http_port, engines)
            await asyncio.sleep(_SETTLE)
            unloaded = process.memory_info().rss
        finally:
            server.stop()
    return {"loaded": loaded, "peak": sampler.peak_rss, "unloaded": unloaded}


async def _until_unloaded(http_port: int, engines: list[str]) -> None:
    deadline = time.monotonic() + _WAIT
    while True:
        health = await get_json(http_port, "/health")
        if all(health["engines"][name]["state"] == "unloaded" for name in engines):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"engines not unloaded after {_WAIT:g} s: {health['engines']}")
        await asyncio.sleep(0.2)

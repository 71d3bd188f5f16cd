"""What a running server holds (memory, file descriptors, threads, asyncio tasks), and
waiting until it has no work left: the figures leak checks compare."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from .wyoming_client import HOST

IDLE_TIMEOUT = 120.0
"""Seconds :func:`wait_idle` waits for the engines to finish their work."""

_POLL = 0.05
_SETTLE = 1.0
"""Seconds after the engines are idle for closed connections to be gone too."""


def thread_ceiling(health: Mapping[str, Any]) -> int:
    """The most Python threads a server may hold however many clients come: the main
    thread, the engines' workers (their ``concurrency`` in ``/health``), and asyncio's
    default executor (encoding, voice files), which starts threads on demand up to
    min(32, cores + 4) and keeps them."""
    workers = sum(int(engine["concurrency"]) for engine in health["engines"].values())
    return 1 + workers + min(32, (os.cpu_count() or 1) + 4)


@dataclass(frozen=True)
class Holdings:
    """A server process's resources at one moment."""

    rss: int
    """Resident memory, bytes."""

    fds: int
    """Open file descriptors (``/proc/<pid>/fd``)."""

    os_threads: int
    """Threads of the process, native ones (ONNX Runtime's) included."""

    threads: int
    """Python threads, as the server counts them (``polytts_threads``)."""

    tasks: int
    """Asyncio tasks not done, as the server counts them (``polytts_asyncio_tasks``),
    the one answering the scrape included."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def get_json(http_port: int, path: str) -> Any:
    """GET ``path`` on a new connection that is closed afterwards."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://{HOST}:{http_port}{path}") as response,
    ):
        response.raise_for_status()
        return await response.json()


async def scrape(http_port: int) -> dict[str, float]:
    """``/metrics`` as sample name (labels in braces, sorted) to value."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://{HOST}:{http_port}/metrics") as response,
    ):
        response.raise_for_status()
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def holdings(pid: int, http_port: int) -> Holdings:
    """The resources of server ``pid`` now (file descriptors counted before the scrape
    opens a connection)."""
    process = psutil.Process(pid)
    fds, rss, os_threads = process.num_fds(), process.memory_info().rss, process.num_threads()
    metrics = await scrape(http_port)
    return Holdings(
        rss=rss,
        fds=fds,
        os_threads=os_threads,
        threads=int(metrics["polytts_threads"]),
        tasks=int(metrics["polytts_asyncio_tasks"]),
    )


async def wait_idle(http_port: int, timeout: float = IDLE_TIMEOUT) -> dict[str, Any]:
    """Poll ``/health`` until every engine is loaded or unloaded with no request, running
    or waiting sentence; then let closed connections go. Returns the last ``/health``."""
    deadline = time.monotonic() + timeout
    while True:
        health: dict[str, Any] = await get_json(http_port, "/health")
        engines = health["engines"].values()
        if all(
            e["state"] in ("loaded", "unloaded", "failed")
            and e["requests"] == e["running"] == e["waiting"] == 0
            for e in engines
        ):
            await asyncio.sleep(_SETTLE)
            return health
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server still has work after {timeout:g} s: {health}")
        await asyncio.sleep(_POLL)

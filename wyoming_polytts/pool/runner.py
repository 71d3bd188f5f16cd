"""One engine in the pool: its lifecycle slot, its worker threads and its scheduler.

Each engine gets its own worker threads (as many as its declared concurrency).
The runner does the work of loading and unloading, off the event loop, measures
it, and moves the engine's :class:`~.slot.EngineSlot` accordingly; *when* it loads
and unloads is decided by :mod:`.lifecycle`. Requests and sentences are the
:class:`~.scheduler.Scheduler`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from ..engines.base import Engine
from ..errors import EngineUnavailableError
from .memory import LoadMeter, format_bytes, release_memory
from .scheduler import Scheduler
from .slot import EngineSlot, EngineState, EngineStatus

_LOGGER = logging.getLogger(__name__)


class EngineRunner:
    """Loads and unloads one engine; its scheduler runs the engine's sentence jobs."""

    def __init__(
        self, name: str, engine: Engine, queue_size: int, job_timeout: float | None = None
    ) -> None:
        self.name = name
        self.engine = engine
        self.slot = EngineSlot(name)
        self.memory: int | None = None
        """Bytes measured at the last load (or reported by the engine)."""

        self._executor = ThreadPoolExecutor(
            max_workers=engine.concurrency, thread_name_prefix=f"polytts-{name}"
        )
        self.scheduler = Scheduler(name, engine, self._executor, queue_size, job_timeout)
        self._loaded_at = time.monotonic()

    @property
    def state(self) -> EngineState:
        return self.slot.state

    @property
    def last_used(self) -> float:
        """When a request last came or went, or the engine last loaded (monotonic clock)."""
        return max(self.scheduler.last_used, self._loaded_at)

    @property
    def idle(self) -> bool:
        """No request admitted and no job running or waiting: the engine may be unloaded."""
        return self.scheduler.idle

    def status(self, memory: int | None) -> EngineStatus:
        """The engine's status; ``memory`` is its footprint as the lifecycle counts it."""
        progress = self.engine.load_progress
        loading = self.slot.state is EngineState.LOADING
        return EngineStatus(
            state=self.slot.state,
            error=self.slot.error,
            progress=str(progress) if progress and loading else None,
            memory=memory,
            concurrency=self.engine.concurrency,
            running=len(self.scheduler.running),
            waiting=self.scheduler.waiting,
            requests=len(self.scheduler.sessions),
            stuck=self.scheduler.watchdog.stuck,
            replicas=self.engine.replicas(),
        )

    async def prepare(self) -> None:
        """Run the engine's one-time discovery in its worker thread (failures are logged)."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.prepare)
        except Exception:  # a broken voice listing must not stop the server
            _LOGGER.exception("Engine %s failed to prepare its voice list", self.name)

    async def load(self) -> None:
        """Run ``engine.load()`` in a worker thread and measure what it added; the slot
        must be loading (:meth:`EngineSlot.begin_load`).

        Raises :class:`EngineUnavailableError` (the slot failed) when the engine raised.
        """
        _LOGGER.info("Loading engine %s", self.name)
        self.engine.load_progress = None
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            self.memory, source = await loop.run_in_executor(self._executor, self._load_now)
        except Exception as err:  # any failure makes the engine unavailable, not the server
            error = str(err) or type(err).__name__
            self.slot.failed(error)
            _LOGGER.error("Engine %s failed to load: %s", self.name, error)
            raise EngineUnavailableError(f"engine '{self.name}' failed to load: {error}") from err
        finally:
            self.engine.load_progress = None
        self.slot.loaded()
        self._loaded_at = time.monotonic()
        _LOGGER.info(
            "Engine %s loaded in %.1f s, holding %s (%s)",
            self.name,
            self._loaded_at - started,
            format_bytes(self.memory),
            source,
        )

    def _load_now(self) -> tuple[int | None, str]:
        meter = LoadMeter()
        self.engine.load()
        reported = self.engine.memory_usage()
        if reported is not None:
            return reported, "reported by the engine"
        return meter.added(), meter.source

    async def unload(self, why: str, error: str | None = None) -> None:
        """Unload in a worker thread and hand the memory back. The caller made sure it is
        idle and began the unload (:meth:`EngineSlot.begin_unload`, before any await, so
        that no request starts on it); ``error`` is kept as the slot's error (a load
        undone for the budget)."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._unload_now)
        except Exception:  # the model is dropped either way; the next load starts afresh
            _LOGGER.exception("Engine %s failed to unload cleanly", self.name)
        finally:
            self.slot.unloaded(error)
        _LOGGER.info("Unloaded engine %s (%s)", self.name, why)

    def _unload_now(self) -> None:
        try:
            self.engine.unload()
        finally:
            release_memory()

    def shutdown(self) -> None:
        self.scheduler.cancel_queued()
        self._executor.shutdown(wait=False, cancel_futures=True)

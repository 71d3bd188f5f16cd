"""The engine pool: one runner per engine, shared by both front doors.

Front doors reach engines only through :meth:`EnginePool.session`, which admits
the request, waits for the engine to be loaded (see :mod:`.lifecycle`) and
cancels the request's jobs when it ends. Scheduling lives in :mod:`.scheduler`;
the pool also owns the server's :class:`~.metrics.Metrics`. Once the server
starts shutting down, :meth:`EnginePool.stop_admitting` makes every new request
fail with :class:`ServerShuttingDownError` while admitted ones go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager

from ..engines.base import Engine, SynthesisRequest
from ..errors import ServerShuttingDownError
from .heap_trim import HeapTrimmer
from .jobs import Job, Transform
from .lifecycle import Lifecycle, LifecycleSettings
from .metrics import Metrics
from .runner import EngineRunner
from .slot import EngineState, EngineStatus

__all__ = ["EnginePool", "EngineState", "EngineStatus", "LifecycleSettings", "PoolSession"]

_LOGGER = logging.getLogger(__name__)

_CLOSE_WAIT = 5.0
"""Seconds :meth:`EnginePool.close` waits for running sentences before unloading."""

_CLOSE_POLL = 0.05


class PoolSession:
    """The jobs of one request on one engine; cancelled together when it ends."""

    def __init__(self, runner: EngineRunner) -> None:
        self._runner = runner
        self._jobs: list[Job] = []

    @property
    def awaiting_audio(self) -> bool:
        """Its listener still waits for the first audio: it is being admitted, waits for a
        load, or its first sentence is queued or running. Only such requests take a place
        in the engine's queue (see :meth:`EngineRunner.admit`)."""
        if not self._jobs:
            return True
        first = self._jobs[0]
        return first.awaiting_first_audio and not first.finished

    def submit(
        self, request: SynthesisRequest, position: int, transform: Transform | None = None
    ) -> Job:
        job = self._runner.scheduler.submit(request, position, self, transform)
        self._jobs.append(job)
        return job

    def cancel(self) -> None:
        for job in self._jobs:
            job.cancel()


class EnginePool:
    """Owns every enabled engine; front doors reach them only through sessions."""

    def __init__(
        self,
        engines: Mapping[str, Engine],
        queue_size: int,
        lifecycle: LifecycleSettings | None = None,
        job_timeout: float | None = None,
        heap_trim_interval: float | None = None,
    ) -> None:
        """``job_timeout``: seconds a running sentence may go without audio (None: no limit);
        ``heap_trim_interval``: seconds between heap trims (None: never)."""
        self._runners = {
            name: EngineRunner(name, e, queue_size, job_timeout) for name, e in engines.items()
        }
        self._admitting = True
        self.ready = False
        """Start-up is over: the engines to preload have loaded (or failed to)."""

        self.metrics = Metrics()
        self._lifecycle = Lifecycle(self._runners, lifecycle or LifecycleSettings(), self.metrics)
        self.metrics.watch(self.statuses, self.memory_budget)
        self._heap_trimmer = HeapTrimmer(heap_trim_interval, self.metrics)

    @property
    def engines(self) -> dict[str, Engine]:
        """Enabled engines in config order."""
        return {name: runner.engine for name, runner in self._runners.items()}

    @property
    def preloaded(self) -> list[str]:
        """Engines to load at start (their ``preload`` option or class default), in order."""
        return [name for name, policy in self._lifecycle.policies.items() if policy.preload]

    @property
    def memory_budget(self) -> int | None:
        """Bytes all loaded engines may hold together; None: no budget."""
        return self._lifecycle.settings.memory_budget

    def watch_voices(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called whenever what an engine advertises may have changed:
        its state moved (a failed engine's voices cannot be used; a load finds voices),
        or the engine says its voices changed (from its own thread, see
        :meth:`Engine.voices_changed`)."""
        for runner in self._runners.values():
            runner.slot.watch(callback)
            runner.engine.watch_voices(callback)

    def status(self, name: str) -> EngineStatus:
        return self._runners[name].status(self._lifecycle.footprint(name))

    def statuses(self) -> dict[str, EngineStatus]:
        """Every engine's status, in config order."""
        return {name: self.status(name) for name in self._runners}

    async def prepare(self) -> None:
        """Let every engine read what its voice list needs, off the event loop."""
        await asyncio.gather(*(runner.prepare() for runner in self._runners.values()))

    async def start(self, preload: Iterable[str]) -> None:
        """Start unloading idle engines, and load ``preload`` now (failures are logged)."""
        self._heap_trimmer.start()
        await self._lifecycle.start(preload)
        self.ready = True

    def stop_admitting(self) -> None:
        """Refuse new requests from now on (shutting down); admitted ones go on."""
        self._admitting = False

    async def close(self, wait: float = _CLOSE_WAIT) -> None:
        """Stop the lifecycle, unload every engine and stop the worker threads.

        Sentences still running (their requests are cancelled) get ``wait`` seconds to
        return, those already past ``job_timeout`` none; an engine still inside one after
        that is left as it is, not unloaded.
        """
        self.stop_admitting()
        await self._heap_trimmer.close()
        await self._lifecycle.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(
            status.running > status.stuck for status in self.statuses().values()
        ):
            await asyncio.sleep(_CLOSE_POLL)
        for runner in self._runners.values():
            busy = runner.status(None).running
            if busy:
                _LOGGER.warning(
                    "Engine %s is still inside %d sentence(s); not unloading it", runner.name, busy
                )
            elif runner.state is EngineState.LOADED:
                runner.slot.begin_unload()
                await runner.unload("shutting down")
            runner.shutdown()

    @asynccontextmanager
    async def session(self, engine: str) -> AsyncIterator[PoolSession]:
        """Admit one request to ``engine``; its jobs are cancelled when the block exits."""
        runner = self._runners[engine]
        if not self._admitting:
            raise ServerShuttingDownError("the server is shutting down; try again shortly")
        session = PoolSession(runner)
        runner.scheduler.admit(session)
        try:
            await self._lifecycle.ensure_loaded(runner)
            yield session
        finally:
            session.cancel()
            runner.scheduler.release(session)

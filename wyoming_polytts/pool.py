"""The engine pool: one runner per engine, shared by both front doors.

Front doors reach engines only through :meth:`EnginePool.session`, which admits
the request, waits for the engine to be loaded (see :mod:`.lifecycle`) and
cancels the request's jobs when it ends. Scheduling lives in :mod:`.runner`;
the pool also owns the server's :class:`~.metrics.Metrics`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager

from .engines.base import Engine, SynthesisRequest
from .jobs import Job, Transform
from .lifecycle import Lifecycle, LifecycleSettings
from .metrics import Metrics
from .runner import EngineRunner, EngineState, EngineStatus

__all__ = ["EnginePool", "EngineState", "EngineStatus", "LifecycleSettings", "PoolSession"]


class PoolSession:
    """The jobs of one request on one engine; cancelled together when it ends."""

    def __init__(self, runner: EngineRunner) -> None:
        self._runner = runner
        self._jobs: list[Job] = []

    def submit(
        self, request: SynthesisRequest, position: int, transform: Transform | None = None
    ) -> Job:
        job = self._runner.submit(request, position, transform)
        self._jobs.append(job)
        return job

    def cancel(self) -> None:
        for job in self._jobs:
            job.cancelled.set()


class EnginePool:
    """Owns every enabled engine; front doors reach them only through sessions."""

    def __init__(
        self,
        engines: Mapping[str, Engine],
        queue_size: int,
        lifecycle: LifecycleSettings | None = None,
    ) -> None:
        self._runners = {name: EngineRunner(name, e, queue_size) for name, e in engines.items()}
        self.metrics = Metrics()
        self._lifecycle = Lifecycle(self._runners, lifecycle or LifecycleSettings(), self.metrics)
        self.metrics.watch(self.statuses, self.memory_budget)

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
        await self._lifecycle.start(preload)

    async def close(self) -> None:
        """Stop the lifecycle, unload every engine and stop the worker threads."""
        await self._lifecycle.close()
        for runner in self._runners.values():
            if runner.state is EngineState.LOADED:
                await runner.unload("shutting down")
            runner.shutdown()

    @asynccontextmanager
    async def session(self, engine: str) -> AsyncIterator[PoolSession]:
        """Admit one request to ``engine``; its jobs are cancelled when the block exits."""
        runner = self._runners[engine]
        runner.admit()
        session = PoolSession(runner)
        try:
            await self._lifecycle.ensure_loaded(runner)
            yield session
        finally:
            session.cancel()
            runner.release()

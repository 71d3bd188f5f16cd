"""The engine pool: one scheduler per engine, shared by both front doors.

Each engine gets its own worker threads (as many as its declared concurrency),
a bound on the requests it accepts, and a priority queue of sentence jobs. Jobs
are ordered by their sentence's position within its request, so every waiting
request's first sentence is served before later sentences of others: with many
clients, speech starts early for all of them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .engines.base import Engine, SynthesisRequest
from .errors import EngineUnavailableError, PolyttsError, ServerBusyError, SynthesisError

_LOGGER = logging.getLogger(__name__)


class EngineState(StrEnum):
    """Lifecycle of an engine in the pool."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of one engine, for health reports."""

    state: EngineState
    error: str | None
    concurrency: int
    running: int
    """Sentence jobs being synthesized now."""

    waiting: int
    """Sentence jobs queued."""

    requests: int
    """Requests admitted (running, queued or between sentences)."""


class _End:
    """Marks the end of a job's output."""


_END = _End()

Transform = Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]
"""Post-processing of one job's pieces, run in the worker thread (e.g. time-stretching)."""


class Job:
    """One sentence for one engine; its PCM pieces are read with :meth:`pieces`."""

    def __init__(
        self,
        request: SynthesisRequest,
        priority: tuple[int, int],
        loop: asyncio.AbstractEventLoop,
        transform: Transform | None = None,
    ) -> None:
        self.request = request
        self.priority = priority
        self.transform = transform
        self.cancelled = threading.Event()
        self._loop = loop
        self._output: asyncio.Queue[np.ndarray | BaseException | _End] = asyncio.Queue()

    def __lt__(self, other: Job) -> bool:
        return self.priority < other.priority

    def emit(self, item: np.ndarray | BaseException | _End) -> None:
        """Hand an item to the event loop (called from the worker thread)."""
        try:
            self._loop.call_soon_threadsafe(self._output.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self.cancelled.set()

    async def pieces(self) -> AsyncIterator[np.ndarray]:
        """PCM pieces in order; raises the engine's error if it failed."""
        while True:
            item = await self._output.get()
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class EngineRunner:
    """Loads one engine and schedules its sentence jobs onto its worker threads."""

    def __init__(self, name: str, engine: Engine, queue_size: int) -> None:
        self.name = name
        self.engine = engine
        self.state = EngineState.UNLOADED
        self.error: str | None = None
        self._queue_size = queue_size
        self._executor = ThreadPoolExecutor(
            max_workers=engine.concurrency, thread_name_prefix=f"polytts-{name}"
        )
        self._heap: list[Job] = []
        self._running = 0
        self._requests = 0
        self._order = itertools.count()
        self._loading: asyncio.Future[None] | None = None

    def status(self) -> EngineStatus:
        return EngineStatus(
            state=self.state,
            error=self.error,
            concurrency=self.engine.concurrency,
            running=self._running,
            waiting=sum(1 for job in self._heap if not job.cancelled.is_set()),
            requests=self._requests,
        )

    async def ensure_loaded(self) -> None:
        """Load the engine once; concurrent callers wait for the same load."""
        if self.state is EngineState.LOADED:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)
        if self.state is EngineState.FAILED:
            raise EngineUnavailableError(f"engine '{self.name}' failed to load: {self.error}")

    async def _load(self) -> None:
        self.state = EngineState.LOADING
        _LOGGER.info("Loading engine %s", self.name)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.engine.load)
        except Exception as err:  # any failure makes the engine unavailable, not the server
            self.state = EngineState.FAILED
            self.error = str(err) or type(err).__name__
            _LOGGER.error("Engine %s failed to load: %s", self.name, self.error)
        else:
            self.state = EngineState.LOADED
            self.error = None
            _LOGGER.info("Engine %s loaded", self.name)
        finally:
            self._loading = None

    def admit(self) -> None:
        """Count a new request in, or refuse it when the engine's queue is full."""
        if self._requests >= self.engine.concurrency + self._queue_size:
            raise ServerBusyError(
                f"the server is busy: engine '{self.name}' already has "
                f"{self._requests} requests in progress; try again shortly"
            )
        self._requests += 1

    def release(self) -> None:
        self._requests -= 1

    def submit(
        self, request: SynthesisRequest, position: int, transform: Transform | None = None
    ) -> Job:
        """Queue one sentence; ``position`` is its index within its request."""
        job = Job(request, (position, next(self._order)), asyncio.get_running_loop(), transform)
        heapq.heappush(self._heap, job)
        self._dispatch()
        return job

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running < self.engine.concurrency and self._heap:
            job = heapq.heappop(self._heap)
            if job.cancelled.is_set():
                continue
            self._running += 1
            future = loop.run_in_executor(self._executor, self._work, job)
            future.add_done_callback(self._job_done)

    def _job_done(self, _future: asyncio.Future[None]) -> None:
        self._running -= 1
        self._dispatch()

    def _work(self, job: Job) -> None:
        """Run one job in a worker thread, stopping early if it is cancelled."""
        if job.cancelled.is_set():
            job.emit(_END)
            return
        try:
            pieces = self.engine.synthesize(job.request)
            if job.transform is not None:
                pieces = job.transform(pieces)
            for piece in pieces:
                if job.cancelled.is_set():
                    break
                job.emit(piece)
        except PolyttsError as err:
            job.emit(err)
        except Exception as err:  # an engine bug must reach the client, not kill the worker
            _LOGGER.exception("Engine %s failed on %r", self.name, job.request.text[:80])
            job.emit(SynthesisError(f"engine '{self.name}' failed: {err}"))
        finally:
            job.emit(_END)

    async def unload(self) -> None:
        if self.state is EngineState.LOADED:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.unload)
            self.state = EngineState.UNLOADED

    def shutdown(self) -> None:
        for job in self._heap:
            job.cancelled.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


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

    def __init__(self, engines: Mapping[str, Engine], queue_size: int) -> None:
        self._runners = {name: EngineRunner(name, e, queue_size) for name, e in engines.items()}

    @property
    def engines(self) -> dict[str, Engine]:
        """Enabled engines in config order."""
        return {name: runner.engine for name, runner in self._runners.items()}

    def status(self, name: str) -> EngineStatus:
        return self._runners[name].status()

    async def start(self, preload: Iterable[str]) -> None:
        """Load the named engines now (failures are logged and reported, not raised)."""
        await asyncio.gather(
            *(self._runners[name].ensure_loaded() for name in preload), return_exceptions=True
        )

    async def close(self) -> None:
        """Unload every engine and stop the worker threads."""
        for runner in self._runners.values():
            try:
                await runner.unload()
            except Exception:  # unloading is best effort while shutting down
                _LOGGER.exception("Engine %s failed to unload", runner.name)
            runner.shutdown()

    @asynccontextmanager
    async def session(self, engine: str) -> AsyncIterator[PoolSession]:
        """Admit one request to ``engine``; its jobs are cancelled when the block exits."""
        runner = self._runners[engine]
        runner.admit()
        session = PoolSession(runner)
        try:
            await runner.ensure_loaded()
            yield session
        finally:
            session.cancel()
            runner.release()

"""One engine in the pool: its state, its worker threads and its queue of sentence jobs.

Each engine gets its own worker threads (as many as its declared concurrency),
a bound on the requests it accepts, and a priority queue of sentence jobs. Jobs
are ordered by their sentence's position within its request, so every waiting
request's first sentence is served before later sentences of others: with many
clients, speech starts early for all of them. When a request's first sentence
waits and every worker is busy, a worker on any other sentence sets it aside
after its current piece (engines that stream below the sentence hand over several)
and takes it up again later. A request's later sentence starts beside one of its
own only on a worker no other request wants, and only once its listener hears
audio: before that it would slow down the sentence the listener waits for. When
it loads and unloads is decided by :mod:`.lifecycle`; the runner does the work
and measures it.

A sentence that stalls past ``pool.job_timeout`` fails its request (see
:mod:`.watchdog`); while every worker of an engine is stuck in such a call, its
queued sentences and new requests fail at once with
:class:`EngineUnavailableError` instead of waiting. An engine running out of
memory fails only the request it was working on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Protocol

from .engines.base import Engine, SynthesisRequest
from .errors import (
    EngineOutOfMemoryError,
    EngineUnavailableError,
    PolyttsError,
    ServerBusyError,
    SynthesisError,
)
from .jobs import Job, Transform
from .memory import LoadMeter, format_bytes, is_out_of_memory, release_memory
from .watchdog import Watchdog

_LOGGER = logging.getLogger(__name__)


class Session(Protocol):
    """A request admitted to an engine, as the runner counts it."""

    @property
    def awaiting_audio(self) -> bool:
        """Its listener still waits for the request's first audio."""
        ...


class EngineState(StrEnum):
    """Lifecycle of an engine in the pool."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    FAILED = "failed"


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of one engine, for health reports and metrics."""

    state: EngineState
    error: str | None
    """Why the last load failed or was refused (kept until a load succeeds)."""

    progress: str | None
    """What a loading engine is doing, as far as it reports (e.g. a download's share)."""

    memory: int | None
    """Bytes the engine holds when loaded: measured at its last load, else the
    configured estimate; None when unknown."""

    concurrency: int
    running: int
    """Sentence jobs being synthesized now."""

    waiting: int
    """Sentence jobs queued."""

    requests: int
    """Requests admitted (running, queued or between sentences)."""

    stuck: int = 0
    """Sentence jobs past ``pool.job_timeout`` whose engine call has not returned yet
    (each keeps its worker busy)."""


class EngineRunner:
    """Loads and unloads one engine and schedules its sentence jobs onto its worker threads."""

    def __init__(
        self, name: str, engine: Engine, queue_size: int, job_timeout: float | None = None
    ) -> None:
        self.name = name
        self.engine = engine
        self.state = EngineState.UNLOADED
        self.error: str | None = None
        self.memory: int | None = None
        """Bytes measured at the last load (or reported by the engine)."""

        self.last_used = time.monotonic()
        """When a request last came or went, or the engine last loaded (monotonic clock)."""

        self._queue_size = queue_size
        self._watchdog = Watchdog(name, job_timeout, self._dispatch)
        self._executor = ThreadPoolExecutor(
            max_workers=engine.concurrency, thread_name_prefix=f"polytts-{name}"
        )
        self._heap: list[Job] = []
        self._running: set[Job] = set()
        """Jobs in a worker now."""
        self._first_waiting = False
        """A request's first sentence waits for a worker (read by the workers)."""
        self._sessions: set[Session] = set()
        """Requests admitted and not yet ended."""
        self._order = itertools.count()

    def status(self, memory: int | None) -> EngineStatus:
        """The engine's status; ``memory`` is its footprint as the lifecycle counts it."""
        progress = self.engine.load_progress
        return EngineStatus(
            state=self.state,
            error=self.error,
            progress=str(progress) if progress and self.state is EngineState.LOADING else None,
            memory=memory,
            concurrency=self.engine.concurrency,
            running=len(self._running),
            waiting=self._waiting(),
            requests=len(self._sessions),
            stuck=self._watchdog.stuck,
        )

    @property
    def idle(self) -> bool:
        """No request admitted and no job running or waiting: the engine may be unloaded."""
        return not self._sessions and not self._running and self._waiting() == 0

    def _waiting(self) -> int:
        return sum(1 for job in self._heap if not job.cancelled.is_set())

    # --- loading ----------------------------------------------------------

    async def prepare(self) -> None:
        """Run the engine's one-time discovery in its worker thread (failures are logged)."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.prepare)
        except Exception:  # a broken voice listing must not stop the server
            _LOGGER.exception("Engine %s failed to prepare its voice list", self.name)

    async def load(self) -> None:
        """Run ``engine.load()`` in a worker thread and measure what it added.

        Raises :class:`EngineUnavailableError` (state failed) when the engine raised.
        """
        self.state = EngineState.LOADING
        _LOGGER.info("Loading engine %s", self.name)
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            self.memory, source = await loop.run_in_executor(self._executor, self._load_now)
        except Exception as err:  # any failure makes the engine unavailable, not the server
            self.state = EngineState.FAILED
            self.error = str(err) or type(err).__name__
            _LOGGER.error("Engine %s failed to load: %s", self.name, self.error)
            raise EngineUnavailableError(
                f"engine '{self.name}' failed to load: {self.error}"
            ) from err
        finally:
            self.engine.load_progress = None
        self.state = EngineState.LOADED
        self.error = None
        self.last_used = time.monotonic()
        _LOGGER.info(
            "Engine %s loaded in %.1f s, holding %s (%s)",
            self.name,
            self.last_used - started,
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

    async def unload(self, why: str) -> None:
        """Unload in a worker thread and hand the memory back; the caller made sure it is idle."""
        self.state = EngineState.UNLOADING
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._unload_now)
        except Exception:  # the model is dropped either way; the next load starts afresh
            _LOGGER.exception("Engine %s failed to unload cleanly", self.name)
        finally:
            self.state = EngineState.UNLOADED
        _LOGGER.info("Unloaded engine %s (%s)", self.name, why)

    def _unload_now(self) -> None:
        try:
            self.engine.unload()
        finally:
            release_memory()

    # --- requests and jobs ------------------------------------------------

    def admit(self, session: Session) -> None:
        """Count a new request in, or refuse it when the engine's queue is full or
        every worker is stuck.

        The queue counts the requests whose listeners still wait for their first audio
        (:attr:`Session.awaiting_audio`): a new request's first sentence goes before every
        later sentence, so only those can delay it. A request that has started to speak,
        waits for more text or for its client to read takes no place, so such clients
        cannot lock others out.
        """
        if self._unresponsive:
            raise self._unresponsive_error()
        waiting = sum(1 for each in self._sessions if each.awaiting_audio)
        if waiting >= self.engine.concurrency + self._queue_size:
            raise ServerBusyError(
                f"the server is busy: engine '{self.name}' already has "
                f"{waiting} requests waiting for their first audio; try again shortly"
            )
        self._sessions.add(session)
        self.last_used = time.monotonic()

    def release(self, session: Session) -> None:
        self._sessions.discard(session)
        self.last_used = time.monotonic()

    def submit(
        self,
        request: SynthesisRequest,
        position: int,
        owner: object,
        transform: Transform | None = None,
    ) -> Job:
        """Queue one sentence; ``position`` is its index within its request, ``owner``
        stands for the request (see the module docstring on running its sentences)."""
        job = Job(
            request, position, next(self._order), owner, asyncio.get_running_loop(), transform
        )
        heapq.heappush(self._heap, job)
        self._dispatch()
        return job

    @property
    def _unresponsive(self) -> bool:
        return self._watchdog.stuck >= self.engine.concurrency

    def _unresponsive_error(self) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"engine '{self.name}' is not responding: its {self._watchdog.stuck} worker(s) "
            f"have been stuck in a sentence for more than {self._watchdog.timeout:g} s "
            "(pool.job_timeout); try again later"
        )

    def _dispatch(self) -> None:
        if self._unresponsive:  # nothing queued could start: fail it instead of waiting
            while self._heap:
                heapq.heappop(self._heap).fail(self._unresponsive_error())
            return
        held: list[Job] = []
        while self._free_workers and self._heap:
            job = heapq.heappop(self._heap)
            if job.cancelled.is_set() and job.paused is None:
                continue
            if any(running.owner is job.owner for running in self._running):
                held.append(job)
                continue
            self._start(job)
        for job in held:  # workers nobody else wants: later sentences of heard requests
            if self._free_workers and not any(
                running.owner is job.owner and running.awaited for running in self._running
            ):
                self._start(job)
            else:
                heapq.heappush(self._heap, job)
        self._first_waiting = any(job.awaited and not job.cancelled.is_set() for job in self._heap)

    @property
    def _free_workers(self) -> bool:
        return len(self._running) < self.engine.concurrency

    def _start(self, job: Job) -> None:
        self._running.add(job)
        self._watchdog.started(job)
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._work, job)
        future.add_done_callback(partial(self._job_done, job))

    def _job_done(self, job: Job, _future: asyncio.Future[None]) -> None:
        # The job's end goes to its reader only here, once its worker is free: a
        # client that has heard the end of its audio never sees its job running.
        self._running.discard(job)
        self._watchdog.returned(job)
        if job.paused is None:
            job.end()
        else:  # resumed later, or closed in a worker if it was cancelled meanwhile
            heapq.heappush(self._heap, job)
        self._dispatch()

    def _work(self, job: Job) -> None:
        """Give ``job`` one turn in a worker thread: until it ends, is cancelled, or is
        asked to make way after a piece (then :attr:`Job.paused` keeps the rest)."""
        pieces, job.paused = job.paused, None
        if job.cancelled.is_set():
            if isinstance(pieces, Generator):
                pieces.close()
            return
        started = time.monotonic()
        try:
            if pieces is None:
                pieces = self.engine.synthesize(job.request)
                if job.transform is not None:
                    pieces = job.transform(pieces)
            for piece in pieces:
                if job.cancelled.is_set():
                    break
                job.emit(piece)
                first_audio = job.awaited
                job.heard = True
                if first_audio:  # its request's later sentences may start now
                    job.call_soon(self._dispatch)
                if self._first_waiting:  # make way for it
                    job.paused = pieces
                    return
            else:
                job.elapsed = job.busy + time.monotonic() - started
        except PolyttsError as err:
            job.emit(err)
        except Exception as err:  # an engine bug must reach the client, not kill the worker
            if is_out_of_memory(err):
                _LOGGER.warning("Engine %s ran out of memory: %s", self.name, err)
                release_memory()
                job.emit(
                    EngineOutOfMemoryError(
                        f"engine '{self.name}' ran out of memory; try again shortly, with "
                        "shorter text, or with fewer requests at once"
                    )
                )
            else:
                _LOGGER.exception("Engine %s failed on %r", self.name, job.request.text[:80])
                job.emit(SynthesisError(f"engine '{self.name}' failed: {err}"))
        finally:
            job.busy += time.monotonic() - started

    def shutdown(self) -> None:
        for job in self._heap:
            job.cancelled.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

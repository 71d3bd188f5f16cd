"""One engine's requests and sentence jobs: admission, the priority queue, worker turns.

Jobs are ordered by their sentence's position within its request, so every
waiting request's first sentence is served before later sentences of others:
with many clients, speech starts early for all of them. When a request's first
sentence waits and every worker is busy, a worker on any other sentence sets it
aside after its current piece (engines that stream below the sentence hand over
several) and takes it up again later. A request's later sentence starts beside
one of its own only on a worker no other request wants, and only once its
listener hears audio: before that it would slow down the sentence the listener
waits for. A first sentence learns as it starts whether others' first sentences
wait behind it (``SynthesisRequest.crowded``), so that its engine may hand over a
shorter first piece.

A sentence that has waited :data:`OVERDUE_AFTER` goes before all of that, oldest
first, so that sustained overload cannot starve requests that are already speaking.

A sentence that stalls past ``pool.job_timeout`` fails its request (see
:mod:`.watchdog`); while every worker of an engine is stuck in such a call, its
queued sentences and new requests fail at once with
:class:`EngineUnavailableError` instead of waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Protocol

from ..engines.base import Engine, SynthesisRequest
from ..errors import EngineUnavailableError, ServerBusyError
from .jobs import Job, Transform
from .watchdog import Watchdog
from .worker import run_turn

OVERDUE_AFTER = 10.0
"""Seconds a queued sentence may wait before it goes ahead of every other request's
first sentence. First sentences first starts speech early for everyone while the
engine keeps up; under sustained overload (more requests than it can serve, such as
Kokoro on a few CPU cores) it kept the later sentences of requests already speaking
behind an endless line of newcomers: the hour-long Kokoro soak saw answers take 250 s
and clients give up at 300 s. Ten seconds is above the whole of a burst of 32 answers
at once on two cores (about 9 s), so the order there stays as it was."""


class Session(Protocol):
    """A request admitted to an engine, as the scheduler counts it."""

    @property
    def awaiting_audio(self) -> bool:
        """Its listener still waits for the request's first audio."""
        ...


class Scheduler:
    """Admits requests to one engine and runs their sentence jobs on its workers."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        executor: ThreadPoolExecutor,
        queue_size: int,
        job_timeout: float | None,
    ) -> None:
        self._name = name
        self._engine = engine
        self._executor = executor
        self._queue_size = queue_size
        self.watchdog = Watchdog(name, job_timeout, self._dispatch)
        self._heap: list[Job] = []
        self.running: set[Job] = set()
        """Jobs in a worker now."""

        self._first_waiting = False
        """A request's first sentence waits for a worker (read by the workers)."""

        self.sessions: set[Session] = set()
        """Requests admitted and not yet ended."""

        self.last_used = time.monotonic()
        """When a request last came or went (monotonic clock)."""

        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        """Jobs queued and not cancelled."""
        return sum(1 for job in self._heap if not job.cancelled.is_set())

    @property
    def idle(self) -> bool:
        """No request admitted and no job running or waiting."""
        return not self.sessions and not self.running and self.waiting == 0

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
        waiting = sum(1 for each in self.sessions if each.awaiting_audio)
        if waiting >= self._engine.concurrency + self._queue_size:
            raise ServerBusyError(
                f"the server is busy: engine '{self._name}' already has "
                f"{waiting} requests waiting for their first audio; try again shortly"
            )
        self.sessions.add(session)
        self.last_used = time.monotonic()

    def release(self, session: Session) -> None:
        self.sessions.discard(session)
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

    def cancel_queued(self) -> None:
        for job in self._heap:
            job.cancelled.set()

    @property
    def _unresponsive(self) -> bool:
        return self.watchdog.stuck >= self._engine.concurrency

    def _unresponsive_error(self) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"engine '{self._name}' is not responding: its {self.watchdog.stuck} worker(s) "
            f"have been stuck in a sentence for more than {self.watchdog.timeout:g} s "
            "(pool.job_timeout); try again later"
        )

    def _dispatch(self) -> None:
        if self._unresponsive:  # nothing queued could start: fail it instead of waiting
            while self._heap:
                heapq.heappop(self._heap).fail(self._unresponsive_error())
            return
        held: list[Job] = []
        while self._free_workers and self._heap:
            job = self._pop()
            if job.cancelled.is_set() and job.paused is None:
                continue
            if any(running.owner is job.owner for running in self.running):
                held.append(job)
                continue
            self._start(job)
        for job in held:  # workers nobody else wants: later sentences of heard requests
            if self._free_workers and not any(
                running.owner is job.owner and running.awaiting_first_audio
                for running in self.running
            ):
                self._start(job)
            else:
                heapq.heappush(self._heap, job)
        self._first_waiting = self._first_queued

    def _pop(self) -> Job:
        """The oldest job when it is overdue (see :data:`OVERDUE_AFTER`), else the first
        by priority. Jobs are numbered as they are queued, so the oldest is the lowest."""
        oldest = min(self._heap, key=lambda job: job.order)
        if not _overdue(oldest):
            return heapq.heappop(self._heap)
        self._heap.remove(oldest)
        heapq.heapify(self._heap)
        return oldest

    @property
    def _first_queued(self) -> bool:
        """A request's first sentence is queued (and not cancelled)."""
        return any(job.awaiting_first_audio and not job.cancelled.is_set() for job in self._heap)

    @property
    def _free_workers(self) -> bool:
        return len(self.running) < self._engine.concurrency

    def _start(self, job: Job) -> None:
        if job.paused is None and job.request.first:
            job.request = replace(job.request, crowded=self._first_queued)
        self.running.add(job)
        job.on_cancel = partial(self._engine.cancel, job.request)
        self.watchdog.started(job)
        make_way = partial(self._make_way, job)
        turn = partial(run_turn, self._engine, self._name, job, make_way, self._dispatch)
        future = asyncio.get_running_loop().run_in_executor(self._executor, turn)
        future.add_done_callback(partial(self._job_done, job))

    def _make_way(self, job: Job) -> bool:
        """Read by ``job``'s worker after each piece: a first sentence waits for a worker,
        the engine's work stops while its sentence is set aside, and ``job`` is not
        overdue itself."""
        return self._first_waiting and self._engine.pausable and not _overdue(job)

    def _job_done(self, job: Job, _future: asyncio.Future[None]) -> None:
        # The job's end goes to its reader only here, once its worker is free: a
        # client that has heard the end of its audio never sees its job running.
        self.running.discard(job)
        self.watchdog.returned(job)
        if job.failure is not None:
            job.fail(job.failure)
        elif job.paused is None:
            job.end()
        else:  # resumed later, or closed in a worker if it was cancelled meanwhile
            heapq.heappush(self._heap, job)
        self._dispatch()


def _overdue(job: Job) -> bool:
    return time.monotonic() - job.submitted > OVERDUE_AFTER

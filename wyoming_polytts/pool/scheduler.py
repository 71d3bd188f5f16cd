"""One engine's requests and sentence jobs: admission, the queue, worker turns.

Waiting sentences are ranked each time a worker is free (see :func:`rank`):

1. *Urgent*: the next sentence of a request whose listener has less than
   :data:`URGENT_SLACK` seconds of audio left (see :mod:`.playback`), the one with
   the least first: an audible stall is the worst thing that can happen to a
   listener, so it goes even before a newcomer's first sentence.
2. *First sentences*, in order of arrival: a listener who has heard nothing waits.
3. *Playing*: later sentences of requests whose listeners have audio in hand, the
   least first.
4. Later sentences of requests not heard yet.

A worker on a sentence sets it aside after its current piece (engines that stream
below the sentence hand over several) when a sentence of a better rank waits, and
takes it up again later. A request's later sentence starts beside one of its own
only on a worker no other request wants, and only once its listener hears audio:
before that it would slow down the sentence the listener waits for. With more
clients than the engine can keep playing, newcomers thus wait for their first
audio rather than making everyone's playback stall.

A sentence that stalls past ``pool.job_timeout`` fails its request (see
:mod:`.watchdog`); while every worker of an engine is stuck in such a call, its
queued sentences and new requests fail at once with
:class:`EngineUnavailableError` instead of waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol

from ..engines.base import Engine, SynthesisRequest
from ..errors import EngineUnavailableError, ServerBusyError
from .jobs import Job, Transform
from .playback import Playback
from .watchdog import Watchdog
from .worker import run_turn

URGENT_SLACK = 0.6
"""Seconds of audio a listener may have left before its request's next sentence goes
first: a piece takes up to about a quarter of a second to make on a busy worker, and
the worker that will make it may first have to finish a piece of its own."""

URGENT, FIRST, PLAYING, LATER = range(4)
"""Ranks of a waiting sentence, best first (see the module docstring)."""


class Session(Protocol):
    """A request admitted to an engine, as the scheduler counts it."""

    @property
    def awaiting_audio(self) -> bool:
        """Its listener still waits for the request's first audio."""
        ...

    @property
    def playback(self) -> Playback:
        """The request's audio against its listener."""
        ...


def rank(job: Job, now: float) -> tuple[int, float]:
    """Where ``job`` stands among waiting sentences at ``now``; lower goes first."""
    if job.awaiting_first_audio:
        return FIRST, job.order
    if job.playback.started is None:
        return LATER, job.order
    slack = job.playback.slack(now)
    return (URGENT if slack < URGENT_SLACK else PLAYING), slack


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
        self._waiting: list[Job] = []
        self.running: set[Job] = set()
        """Jobs in a worker now."""

        self._best_waiting: int | None = None
        """The best rank among sentences waiting for a worker (read by the workers)."""

        self._wake: asyncio.TimerHandle | None = None
        """Ranks the waiting sentences again when the first of them turns urgent."""

        self.sessions: set[Session] = set()
        """Requests admitted and not yet ended."""

        self.last_used = time.monotonic()
        """When a request last came or went (monotonic clock)."""

        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        """Jobs queued and not cancelled."""
        return sum(1 for job in self._waiting if not job.cancelled.is_set())

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
        owner: Session,
        transform: Transform | None = None,
    ) -> Job:
        """Queue one sentence; ``position`` is its index within its request, ``owner``
        stands for the request (see the module docstring on running its sentences)."""
        loop = asyncio.get_running_loop()
        order = next(self._order)
        job = Job(request, position, order, owner, owner.playback, loop, transform)
        self._waiting.append(job)
        self._dispatch()
        return job

    def cancel_queued(self) -> None:
        for job in self._waiting:
            job.cancelled.set()
        if self._wake is not None:
            self._wake.cancel()

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
            for job in self._waiting:
                job.fail(self._unresponsive_error())
            self._waiting.clear()
            return
        now = time.monotonic()
        self._waiting = [
            j for j in self._waiting if j.paused is not None or not j.cancelled.is_set()
        ]
        self._waiting.sort(key=lambda job: rank(job, now))
        for job in list(self._waiting):
            if not self._free_workers:
                break
            if not self._owner_running(job):
                self._start(job)
        for job in list(self._waiting):  # workers nobody else wants: later sentences
            if not self._free_workers:
                break
            if not any(r.owner is job.owner and r.awaiting_first_audio for r in self.running):
                self._start(job)
        self._rank_waiting(now)

    def _owner_running(self, job: Job) -> bool:
        return any(running.owner is job.owner for running in self.running)

    def _rank_waiting(self, now: float) -> None:
        """Note the best rank that waits (workers make way for it) and wake up when the
        first playing request turns urgent."""
        ranks = [rank(job, now)[0] for job in self._waiting if not self._owner_running(job)]
        self._best_waiting = min(ranks, default=None)
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        dry = min((job.playback.runs_dry(URGENT_SLACK) for job in self._waiting), default=now)
        if now < dry < math.inf:
            loop = asyncio.get_running_loop()
            self._wake = loop.call_later(dry - now, self._dispatch)

    @property
    def _free_workers(self) -> bool:
        return len(self.running) < self._engine.concurrency

    def _start(self, job: Job) -> None:
        self._waiting.remove(job)
        self.running.add(job)
        self.watchdog.started(job)
        turn = partial(run_turn, self._engine, self._name, job, self._make_way, self._dispatch)
        future = asyncio.get_running_loop().run_in_executor(self._executor, turn)
        future.add_done_callback(partial(self._job_done, job))

    def _make_way(self, job: Job) -> bool:
        """Read by ``job``'s worker after each piece: a sentence of a better rank waits."""
        best = self._best_waiting
        if best is None:
            return False
        slack = job.playback.slack(time.monotonic())
        return best < (URGENT if slack < URGENT_SLACK else PLAYING)

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
            self._waiting.append(job)
        self._dispatch()

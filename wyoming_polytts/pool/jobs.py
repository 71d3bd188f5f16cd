"""Sentence jobs: one sentence for one engine, its PCM handed from a worker thread to the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np

from ..engines.base import SynthesisRequest
from ..errors import PolyttsError


class _End:
    """Marks the end of a job's output."""


_END = _End()

Transform = Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]
"""Post-processing of one job's pieces, run in the worker thread (e.g. time-stretching)."""


class Job:
    """One sentence for one engine; its PCM pieces are read with :meth:`pieces`.

    A job may run in several turns: its worker can set it aside between two pieces
    and a worker resumes it later from :attr:`paused`.
    """

    def __init__(
        self,
        request: SynthesisRequest,
        position: int,
        order: int,
        owner: object,
        loop: asyncio.AbstractEventLoop,
        transform: Transform | None = None,
    ) -> None:
        self.request = request
        self.position = position
        """The sentence's index within its request."""

        self.order = order
        self.owner = owner
        """Stands for the request the sentence belongs to."""

        self.transform = transform
        self.submitted = time.monotonic()
        """When the job was queued (monotonic clock); see ``scheduler.OVERDUE_AFTER``."""

        self.cancelled = threading.Event()
        """Set (through :meth:`cancel`) when nobody wants the job's audio any more; its
        worker stops at the next piece."""

        self.on_cancel: Callable[[], None] | None = None
        """Called by :meth:`cancel` while the engine call has started: tells the engine
        (:meth:`Engine.cancel`), so a call that waits on another machine ends at once."""

        self.heard = False
        """It has handed over a piece of audio."""

        self.paused: Iterator[np.ndarray] | None = None
        """The engine's pieces not handed over yet, while the job is set aside."""

        self.busy = 0.0
        """Seconds workers have spent on the job so far."""

        self.elapsed: float | None = None
        """Seconds the worker spent on the whole sentence; set when it finished without error."""

        self.progress = time.monotonic()
        """When the job started in a worker or last handed over a piece (monotonic clock)."""

        self.finished = False
        """Its end was handed to the reader (the engine's, or an error from :meth:`fail`)."""

        self.failure: PolyttsError | None = None
        """Why the engine failed on the sentence (set by the worker; its reader gets it
        once the worker is free)."""

        self.timed_out = False
        """Ended by the pool's job timeout while the engine call had not returned."""

        self.watchdog: asyncio.TimerHandle | None = None
        """The pool's timer that checks this job for a stalled engine while it runs."""

        self._loop = loop
        self._output: asyncio.Queue[np.ndarray | BaseException | _End] = asyncio.Queue()

    @property
    def awaiting_first_audio(self) -> bool:
        """Its listener has heard nothing yet: the first sentence of a request, before
        its first piece."""
        return self.position == 0 and not self.heard

    @property
    def priority(self) -> tuple[bool, int, int]:
        """Lower goes first: sentences whose listener awaits the first audio, then by
        position within their request, then in order of arrival."""
        return (not self.awaiting_first_audio, self.position, self.order)

    def __lt__(self, other: Job) -> bool:
        return self.priority < other.priority

    def emit(self, item: np.ndarray | BaseException) -> None:
        """Hand an item to the event loop (called from the worker thread)."""
        self.call_soon(self._deliver, item)

    def call_soon(self, callback: Callable[..., None], *args: object) -> None:
        """Run ``callback(*args)`` on the job's event loop (called from the worker thread)."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self.cancelled.set()

    def cancel(self) -> None:
        """Nobody wants the job's audio any more (on the loop): its worker stops at the next
        piece, and an engine call that has started and not returned is told at once."""
        first = not self.cancelled.is_set()
        self.cancelled.set()
        if first and not self.finished and self.on_cancel is not None:
            self.on_cancel()

    def end(self) -> None:
        """Hand the end of the output to the reader (on the loop, after the last piece)."""
        self._deliver(_END)

    def fail(self, err: BaseException) -> None:
        """End the job now with ``err`` (on the loop), whatever its worker still does:
        the worker is told to stop and anything it hands over later is dropped."""
        if self.finished:
            return
        self.cancel()
        self._deliver(err)
        self.end()

    def _deliver(self, item: np.ndarray | BaseException | _End) -> None:
        if self.finished:
            return
        self.progress = time.monotonic()
        self.finished = isinstance(item, _End)
        self._output.put_nowait(item)

    async def pieces(self) -> AsyncIterator[np.ndarray]:
        """PCM pieces in order; raises the engine's error if it failed."""
        while True:
            item = await self._output.get()
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item

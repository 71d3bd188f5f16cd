"""Sentence jobs: one sentence for one engine, its PCM handed from a worker thread to the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np

from .engines.base import SynthesisRequest


class _End:
    """Marks the end of a job's output."""


END = _End()

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
        self.elapsed: float | None = None
        """Seconds the worker spent on the whole sentence; set when it finished without error."""

        self.progress = time.monotonic()
        """When the job started in a worker or last handed over a piece (monotonic clock)."""

        self.finished = False
        """Its end was handed to the reader (the engine's, or an error from :meth:`fail`)."""

        self.timed_out = False
        """Ended by the pool's job timeout while the engine call had not returned."""

        self.watchdog: asyncio.TimerHandle | None = None
        """The pool's timer that checks this job for a stalled engine while it runs."""

        self._loop = loop
        self._output: asyncio.Queue[np.ndarray | BaseException | _End] = asyncio.Queue()

    def __lt__(self, other: Job) -> bool:
        return self.priority < other.priority

    def emit(self, item: np.ndarray | BaseException | _End) -> None:
        """Hand an item to the event loop (called from the worker thread)."""
        try:
            self._loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self.cancelled.set()

    def fail(self, err: BaseException) -> None:
        """End the job now with ``err`` (on the loop), whatever its worker still does:
        the worker is told to stop and anything it hands over later is dropped."""
        if self.finished:
            return
        self.cancelled.set()
        self._deliver(err)
        self._deliver(END)

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

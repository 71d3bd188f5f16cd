"""Free heap pages handed back to the system every so often while the server works.

Engines allocate and free from many threads (ONNX Runtime's thread pools, the
pool's workers, asyncio's executor). glibc keeps what they free inside its heaps
for reuse and returns to the system only what lies at a heap's top, so under
steady load the pages it keeps grow with fragmentation: over a 45-minute soak
resident memory crept 0.6 to 0.9 MiB a minute, and one ``malloc_trim`` gave 8
of the 11 MiB gained back (docs/operations/reliability.md). Trimming every
``pool.heap_trim_interval`` seconds brought a 60-minute soak's second-half slope
from 0.48 to 0.31 MiB a minute. The trim runs in a worker thread: it walks every
heap, holding each one's lock in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .memory import can_trim_heap, resident_memory, trim_heap
from .metrics import Metrics

_LOGGER = logging.getLogger(__name__)


class HeapTrimmer:
    """Calls :func:`trim_heap` every ``interval`` seconds and counts what it gave back."""

    def __init__(self, interval: float | None, metrics: Metrics) -> None:
        self._interval = interval
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start trimming (not with no interval, nor where the C library cannot trim)."""
        if self._interval is None or self._task is not None or not can_trim_heap():
            return
        self._task = asyncio.create_task(self._run(self._interval))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            before, started = resident_memory(), time.perf_counter()
            await asyncio.to_thread(trim_heap)
            after, took = resident_memory(), time.perf_counter() - started
            freed = max(0, before - after) if before is not None and after is not None else 0
            self._metrics.heap_trimmed(freed)
            _LOGGER.debug("Heap trimmed in %.1f ms: %d KiB given back", took * 1000, freed // 1024)

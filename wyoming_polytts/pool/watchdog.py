"""The pool's job timeout: sentences whose engine call stalls fail their request.

A running sentence whose engine call hands over nothing for ``pool.job_timeout``
seconds fails its request with :class:`SynthesisTimeoutError`. A thread cannot
be stopped, so its worker counts as busy ("stuck") until the engine call returns;
the runner refuses work for an engine whose workers are all stuck (see
:mod:`.runner`), and the engine serves again as soon as one returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..errors import SynthesisTimeoutError
from .jobs import Job

_LOGGER = logging.getLogger(__name__)


class Watchdog:
    """Times the running jobs of one engine and counts those stuck past the timeout."""

    def __init__(self, engine: str, timeout: float | None, stalled: Callable[[], None]) -> None:
        self._engine = engine
        self.timeout = timeout
        """Seconds a running job may go without handing over audio; None: no limit."""

        self._stalled = stalled
        """Called (on the loop) after a job was failed for stalling."""

        self.stuck = 0
        """Jobs failed for stalling whose engine call has not returned yet."""

    def started(self, job: Job) -> None:
        """``job`` has just been handed to a worker."""
        job.progress = time.monotonic()
        if self.timeout is not None:
            job.watchdog = asyncio.get_running_loop().call_later(self.timeout, self._check, job)

    def returned(self, job: Job) -> None:
        """The worker's engine call for ``job`` has returned: its worker is free."""
        if job.watchdog is not None:
            job.watchdog.cancel()
        if job.timed_out:
            self.stuck -= 1
            _LOGGER.warning("Engine %s returned from a timed-out sentence", self._engine)

    def _check(self, job: Job) -> None:
        assert self.timeout is not None
        if job.finished:
            return
        left = job.progress + self.timeout - time.monotonic()
        if left > 0:
            job.watchdog = asyncio.get_running_loop().call_later(left, self._check, job)
            return
        job.timed_out = True
        self.stuck += 1
        _LOGGER.warning(
            "Engine %s produced nothing for %g s on %r; failing its request (the worker "
            "stays busy until the engine returns; %d stuck)",
            self._engine,
            self.timeout,
            job.request.text[:80],
            self.stuck,
        )
        job.fail(
            SynthesisTimeoutError(
                f"engine '{self._engine}' produced no audio for {self.timeout:g} s "
                "(pool.job_timeout); the request was stopped"
            )
        )
        self._stalled()

"""Whether an upstream server is up: the state machine every upstream engine shares.

A :class:`Link` runs on the engine's private event loop. It keeps what the
upstream offers fresh (its Wyoming ``info``, or an OpenAI-compatible server's
voice list), knows whether the upstream is up, and opens a connection per
request. A :class:`PolledLink` reaches a server afresh for every request and
asks it what it offers every ``refresh`` seconds, retrying with back-off while
it fails (``tcp.py`` for Wyoming, ``http_link.py`` for OpenAI-compatible
servers); the supervised child process is in ``process.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from ...errors import EngineUnavailableError, PolyttsError

_LOGGER = logging.getLogger(__name__)

InfoT = TypeVar("InfoT")
"""What the upstream says it offers (its voices)."""

ConnT = TypeVar("ConnT")
"""What a request talks to the upstream through."""


class LinkState(StrEnum):
    """Whether the upstream can be used."""

    STOPPED = "stopped"
    """Not connected: the engine is unloaded (its voices load it again on demand)."""

    STARTING = "starting"
    """Connecting, or a child process that was up is (re)starting."""

    UP = "up"
    DOWN = "down"
    """Unreachable, or a child that keeps failing: its voices are unavailable."""


@dataclass(frozen=True)
class LinkTimings:
    """Timeouts and intervals of one link, in seconds."""

    connect: float
    """Opening a connection (TCP), or waiting for a restarting child (stdio)."""

    request: float
    """Waiting for the next event of an answer."""

    start: float
    """Waiting for a newly started child's first ``info``."""

    refresh: float
    """Between two ``describe`` calls while the upstream is up."""

    max_backoff: float
    """Longest pause between two attempts to reach (or restart) a failing upstream."""

    def backoff(self, failures: int) -> float:
        """Pause after ``failures`` failed attempts in a row: 1, 2, 4 ... seconds."""
        return float(min(2 ** max(failures - 1, 0), self.max_backoff))


class Link(ABC, Generic[InfoT, ConnT]):
    """One upstream: what it offers, its state, and connections to it."""

    reusable: ClassVar[bool]
    """Requests share one connection (which must then be drained, never dropped)."""

    def __init__(
        self,
        label: str,
        timings: LinkTimings,
        on_info: Callable[[InfoT], None],
        on_change: Callable[[], None],
    ) -> None:
        """``on_info`` gets every fresh answer of what the upstream offers; ``on_change`` is called
        when the link's state or error changes (both on the link's loop)."""
        self.label = label
        self.timings = timings
        self.state = LinkState.STOPPED
        self.error: str | None = None
        self.since = time.time()
        self._on_info = on_info
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._wake = asyncio.Event()

    # --- lifecycle (coroutines run on the engine's private loop) ------------

    async def start(self) -> None:
        """Start reaching the upstream in the background (a link is started once)."""
        self._set(LinkState.STARTING, None)
        self._task = asyncio.create_task(self._run(), name=f"upstream {self.label}")

    async def first_attempt(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the first attempt to reach the upstream ended."""
        try:
            await asyncio.wait_for(self._attempted.wait(), timeout)
        except TimeoutError:
            _LOGGER.warning("Upstream %s: no answer within %g s; still trying", self.label, timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._set(LinkState.STOPPED, None)

    @abstractmethod
    async def _run(self) -> None:
        """Keep reaching the upstream until cancelled."""

    @abstractmethod
    def connection(self) -> AbstractAsyncContextManager[ConnT]:
        """A connection for one request; raises :class:`EngineUnavailableError` when down."""

    # --- state --------------------------------------------------------------

    def _set(self, state: LinkState, error: str | None) -> None:
        if state is not self.state:
            self.since = time.time()
            if state is LinkState.DOWN:
                _LOGGER.warning("Upstream %s is down: %s", self.label, error)
            elif state is LinkState.UP:
                _LOGGER.info("Upstream %s is up", self.label)
        changed = (state, error) != (self.state, self.error)
        self.state, self.error = state, error
        if changed:
            self._on_change()

    def _set_up(self, info: InfoT) -> None:
        self._on_info(info)
        self._set(LinkState.UP, None)

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless a failed request wakes the link to check the upstream now."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.state in (LinkState.UP, LinkState.STOPPED),
            "upstream": self.label,
            "state": str(self.state),
            "since": round(self.since, 3),
            "error": self.error,
        }

    def unavailable(self) -> EngineUnavailableError:
        """The error for a request while the upstream cannot be used."""
        why = f": {self.error}" if self.error else ""
        return EngineUnavailableError(f"upstream {self.label} is {self.state}{why}")


class PolledLink(Link[InfoT, ConnT]):
    """An upstream reached afresh for every request, asked what it offers every
    ``refresh`` seconds while it answers and after 1, 2, 4 ... seconds (at most
    ``refresh``) while it fails; a request that cannot reach it wakes it at once."""

    reusable = False
    probe_errors: ClassVar[tuple[type[BaseException], ...]] = (
        OSError,
        TimeoutError,
        PolyttsError,
    )
    """What a failed :meth:`_probe` raises (anything else is a bug, and ends the link)."""

    @abstractmethod
    async def _probe(self) -> InfoT:
        """Ask the upstream what it offers; raises one of :attr:`probe_errors`."""

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                info = await self._probe()
            except self.probe_errors as err:
                failures += 1
                self._set(LinkState.DOWN, reason(err))
                pause = min(self.timings.backoff(failures), self.timings.refresh)
            else:
                failures = 0
                self._set_up(info)
                pause = self.timings.refresh
            self._attempted.set()
            await self._pause(pause)

    def unreachable(self, err: BaseException) -> EngineUnavailableError:
        """A request could not reach the upstream: it is down, checked again now."""
        self._set(LinkState.DOWN, reason(err))
        self._wake.set()
        return self.unavailable()

    def answered(self) -> None:
        """A request reached the upstream: if it was down, ask what it offers now."""
        if self.state is not LinkState.UP:
            self._wake.set()

    def check_soon(self) -> None:
        """A request failed in a way that may mean the upstream is unwell: check it now."""
        self._wake.set()


def reason(err: BaseException) -> str:
    """Why the upstream could not be used, in a few words."""
    if isinstance(err, TimeoutError):
        return "no answer in time"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__

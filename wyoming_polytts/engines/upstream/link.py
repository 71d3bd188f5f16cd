"""How an upstream engine reaches its Wyoming server, and whether it is up.

A :class:`Link` runs on the engine's private event loop. It keeps the
upstream's ``info`` fresh (refreshed periodically and on every reconnect), knows
whether the upstream is up, and opens a :class:`Conversation` per request.
:class:`TcpLink` reaches a server over the network, a new connection per
request; the supervised child process is in ``upstream_process``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlparse

from ...errors import EngineUnavailableError, PolyttsError, SynthesisError
from .client import Conversation, UpstreamClosedError, UpstreamInfo, describe

_LOGGER = logging.getLogger(__name__)


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


class Link(ABC):
    """One upstream: its info, its state, and conversations with it."""

    reusable: ClassVar[bool]
    """Requests share one connection (which must then be drained, never dropped)."""

    def __init__(
        self,
        label: str,
        timings: LinkTimings,
        on_info: Callable[[UpstreamInfo], None],
        on_change: Callable[[], None],
    ) -> None:
        """``on_info`` gets every fresh ``info`` of the upstream; ``on_change`` is called
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
    def connection(self) -> AbstractAsyncContextManager[Conversation]:
        """A conversation for one request; raises :class:`EngineUnavailableError` when down."""

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

    def _set_up(self, info: UpstreamInfo) -> None:
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


def request_failure(label: str, err: BaseException, timeout: float) -> PolyttsError:
    """A client-facing error for a conversation that broke off."""
    if isinstance(err, PolyttsError):
        return err
    if isinstance(err, TimeoutError):
        return SynthesisError(f"upstream {label} sent nothing for {timeout:g} s")
    if isinstance(err, UpstreamClosedError):
        return SynthesisError(f"upstream {label} closed the connection during the request")
    return EngineUnavailableError(f"connection to upstream {label} failed: {err}")


class TcpLink(Link):
    """A Wyoming server at ``tcp://host:port`` (or ``unix://path``); a connection per request."""

    reusable = False

    def __init__(
        self,
        uri: str,
        timings: LinkTimings,
        on_info: Callable[[UpstreamInfo], None],
        on_change: Callable[[], None],
    ) -> None:
        super().__init__(uri, timings, on_info, on_change)
        self._uri = urlparse(uri)

    async def _open(self) -> Conversation:
        if self._uri.scheme == "unix":
            opening = asyncio.open_unix_connection(self._uri.path)
        else:
            opening = asyncio.open_connection(self._uri.hostname, self._uri.port)
        reader, writer = await asyncio.wait_for(opening, self.timings.connect)
        return Conversation(reader, writer, self.timings.request)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                conversation = await self._open()
                try:
                    info = await describe(conversation)
                finally:
                    await _close(conversation)
            except (OSError, TimeoutError, UpstreamClosedError, PolyttsError) as err:
                failures += 1
                self._set(LinkState.DOWN, _reason(err))
                pause = min(self.timings.backoff(failures), self.timings.refresh)
            else:
                failures = 0
                self._set_up(info)
                pause = self.timings.refresh
            self._attempted.set()
            await self._pause(pause)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conversation]:
        try:
            conversation = await self._open()
        except (OSError, TimeoutError) as err:
            self._set(LinkState.DOWN, _reason(err))
            self._wake.set()
            raise self.unavailable() from err
        if self.state is not LinkState.UP:
            self._wake.set()  # it answers again: refresh its info now
        try:
            yield conversation
        except (OSError, UpstreamClosedError) as err:
            self._wake.set()
            raise request_failure(self.label, err, self.timings.request) from err
        finally:
            await _close(conversation)


def _reason(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "no answer in time"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


async def _close(conversation: Conversation) -> None:
    conversation.writer.close()
    with suppress(OSError):  # already reset by the other side
        await conversation.writer.wait_closed()

"""Asking a Wyoming server what it offers: ``describe``, answered by ``info``.

The one client-side copy of that exchange, over whatever carries the events: the
health check's connection, an upstream engine's conversation (TCP or a child's
pipes), and the tests' and benchmark's clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from wyoming.event import Event
from wyoming.info import Describe, Info


class ClosedBeforeInfoError(ConnectionError):
    """The server closed the connection before it answered ``describe``."""


async def request_info(
    read: Callable[[], Awaitable[Event | None]], write: Callable[[Event], Awaitable[None]]
) -> Info:
    """Send ``describe`` with ``write``; the ``info`` that ``read`` brings back.

    Other events read meanwhile (the end of an earlier answer) are skipped; ``read``
    giving None (the connection closed) raises :class:`ClosedBeforeInfoError`.
    """
    await write(Describe().event())
    while (event := await read()) is not None:
        if Info.is_type(event.type):
            return Info.from_event(event)
    raise ClosedBeforeInfoError("the server closed the connection before answering describe")

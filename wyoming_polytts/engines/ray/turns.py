"""Turns of a replica's engine: the pool's fairness, kept inside a replica.

In the server's own process the pool gives a waiting first sentence a worker
between two pieces of another sentence (``pool/scheduler.py``). A call to a replica
cannot be set aside that way: its work would go on in the replica. So a replica
takes more sentences than its engine works on at once (``max_ongoing_requests``
against the engine's ``concurrency``) and hands out turns piece by piece: a
sentence whose listener has heard nothing yet goes first, then sentences in the
order they came.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class Turns:
    """``concurrency`` turns at a time; each piece of a sentence is one turn."""

    def __init__(self, concurrency: int) -> None:
        self._free = concurrency
        self._waiting: list[tuple[tuple[bool, bool, int], int, asyncio.Future[None]]] = []
        self._ties = itertools.count()
        self._order = itertools.count()

    def arrival(self) -> int:
        """A sentence's place in the order of arrival."""
        return next(self._order)

    async def take(self, unheard: bool, first: bool, arrival: int) -> None:
        """Wait for a turn: sentences whose listener waits for the first audio
        (``unheard``) go first, then first sentences, then by ``arrival``."""
        if self._free and not self._waiting:
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, ((not unheard, not first, arrival), next(self._ties), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give()  # granted as it was cancelled: pass it on
            raise

    def give(self) -> None:
        """End a turn: the next waiting sentence takes it."""
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

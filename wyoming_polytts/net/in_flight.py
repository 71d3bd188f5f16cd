"""Requests being answered on either front door, so that a shutdown can let them finish
within its grace and then cut off the rest, each with an error its client can read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ServerShuttingDownError


class InFlight:
    """The tasks answering requests now (a Wyoming connection's, an HTTP handler)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._none = asyncio.Event()
        self._none.set()
        self._cutting_off = False

    def __len__(self) -> int:
        return len(self._tasks)

    @contextmanager
    def request(self) -> Iterator[None]:
        """Count the current task as answering a request while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._none.clear()
        try:
            yield
        finally:
            self._tasks.discard(task)
            if not self._tasks:
                self._none.set()

    @contextmanager
    def cut_off_as_error(self) -> Iterator[None]:
        """Inside :meth:`request`: a cut-off (:meth:`cut_off`) is raised as
        :class:`ServerShuttingDownError`, so the front door answers it like any error."""
        try:
            yield
        except asyncio.CancelledError as err:
            task = asyncio.current_task()
            if not self._cutting_off or task is None or task not in self._tasks:
                raise
            task.uncancel()
            raise ServerShuttingDownError(
                "the server is shutting down; this request was cut off"
            ) from err

    async def finished(self) -> None:
        """Return once no request is being answered (including ones added meanwhile)."""
        await self._none.wait()

    def cut_off(self) -> None:
        """End every request being answered now (see :meth:`request`)."""
        self._cutting_off = True
        for task in self._tasks:
            task.cancel()

"""Stopping the server: requests in progress finish within a grace period.

- The first SIGTERM (or SIGINT) sets the server's stop event. Both listening
  sockets close at once, so new connections are refused; a new request on a
  connection that is still open gets ``server-shutting-down``; requests in
  progress get ``shutdown_grace`` seconds to finish. Then the remaining
  connections are closed, the engines unloaded, and the process exits 0.
- A second signal exits at once, with status 128 + its number (143 for SIGTERM).
- A worker thread still inside an engine call at the end (a hung engine, which
  no thread API can interrupt) does not hold the process: it exits without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import NoReturn

from aiohttp import web
from wyoming.server import AsyncServer

from .pool import EnginePool

_LOGGER = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_THREAD_WAIT = 2.0
"""Seconds the process waits at exit for worker threads that are still finishing."""


class InFlight:
    """Requests being answered (Wyoming), so that a shutdown can let them finish."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __len__(self) -> int:
        return len(self._tasks)

    async def finished(self) -> None:
        """Return once no request is in progress (including ones added meanwhile)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def handle_signals(stop: asyncio.Event) -> None:
    """First SIGTERM or SIGINT: set ``stop``. Any signal after that: exit at once."""
    loop = asyncio.get_running_loop()

    def first(sig: signal.Signals) -> None:
        _LOGGER.info("Received %s: shutting down (send it again to exit at once)", sig.name)
        for each in SIGNALS:
            loop.remove_signal_handler(each)
            # A plain handler, not the loop's: it works even once the loop has stopped.
            signal.signal(each, _exit_at_once)
        stop.set()

    for sig in SIGNALS:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, first, sig)


def _exit_at_once(signum: int, _frame: FrameType | None) -> None:
    # Nothing that takes a lock (logging) may run in a signal handler.
    os.write(2, f"Second {signal.Signals(signum).name}: exiting at once\n".encode())
    os._exit(128 + signum)


async def stop_serving(
    wyoming: AsyncServer,
    http: web.AppRunner | None,
    pool: EnginePool,
    in_flight: InFlight,
    grace: float,
) -> None:
    """Refuse new connections and requests, give requests in progress ``grace`` seconds
    (both front doors at once), close what is left, and unload the engines.

    ``http`` was created with ``shutdown_timeout=grace``: aiohttp's own clean-up stops
    listening, closes idle keep-alive connections and waits for running handlers.
    """
    _LOGGER.info("Stopping: new connections refused, requests in progress get %g s", grace)
    pool.stop_admitting()
    _stop_listening(wyoming)
    await asyncio.gather(
        _drain_wyoming(wyoming, in_flight, grace),
        http.cleanup() if http is not None else asyncio.sleep(0),
    )
    await pool.close()
    _LOGGER.info("Stopped")


def _stop_listening(server: AsyncServer) -> None:
    """Close the Wyoming listening socket but no connection (the library's ``stop()``
    closes both at once). The TCP and Unix servers keep their listener in ``_server``."""
    listener = getattr(server, "_server", None)
    if isinstance(listener, asyncio.AbstractServer):
        listener.close()


async def _drain_wyoming(server: AsyncServer, in_flight: InFlight, grace: float) -> None:
    try:
        async with asyncio.timeout(grace):
            await in_flight.finished()
    except TimeoutError:
        _LOGGER.warning(
            "%d Wyoming request(s) still running after %g s; closing their connections",
            len(in_flight),
            grace,
        )
    await server.stop()


def exit_process(code: int) -> NoReturn:
    """Exit with ``code``, without waiting long for worker threads that never return."""
    deadline = time.monotonic() + _THREAD_WAIT
    for thread in _other_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in _other_threads() if thread.is_alive()]
    if not stuck:
        raise SystemExit(code)
    _LOGGER.warning("Exiting without waiting for %s (inside an engine call)", ", ".join(stuck))
    logging.shutdown()
    os._exit(code)


def _other_threads() -> list[threading.Thread]:
    current = threading.current_thread()
    return [t for t in threading.enumerate() if t is not current and not t.daemon]

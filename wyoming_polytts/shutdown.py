"""Stopping the server: requests in progress finish within a grace period.

- The first SIGTERM (or SIGINT) sets the server's stop event. Both listening
  sockets close at once, so new connections are refused; a new request on a
  connection that is still open gets ``server-shutting-down``; requests in
  progress get ``shutdown_grace`` seconds to finish. Those still running just
  before the end are cut off, each with an error its client can read (an
  ``error`` event on Wyoming, an SSE ``error`` event, or an HTTP body that ends
  without its last chunk). Then the remaining connections are closed, the
  engines unloaded, and the process exits 0, within the grace plus a moment.
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
from collections.abc import Awaitable
from types import FrameType
from typing import NoReturn

from openai_shim.server import HttpServer

from .net.in_flight import InFlight
from .pool.pool import EnginePool
from .wyoming.server import WyomingServer

_LOGGER = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_CUT_OFF = 0.25
"""Seconds before the end of the grace at which requests still running are cut off,
so that their errors reach their clients within the grace."""

_THREAD_WAIT = 0.25
"""Seconds the process waits at exit for worker threads that are still finishing (the
pool has already waited for running sentences within the grace)."""


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
    wyoming: WyomingServer,
    http: HttpServer | None,
    pool: EnginePool,
    in_flight: InFlight,
    grace: float,
) -> None:
    """Refuse new connections and requests, give requests in progress ``grace`` seconds
    (both front doors at once), cut off what is left :data:`_CUT_OFF` seconds before
    the end with an error each client can read, then close every connection and unload
    the engines whose sentences have returned."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    _LOGGER.info("Stopping: new connections refused, requests in progress get %g s", grace)
    pool.stop_admitting()
    wyoming.stop_listening()
    if http is not None:
        http.stop_listening()
    if not await _within(in_flight.finished(), start + max(0.0, grace - _CUT_OFF)):
        _LOGGER.warning(
            "%d request(s) still running after %g s; cutting them off", len(in_flight), grace
        )
        in_flight.cut_off()
        await _within(in_flight.finished(), start + grace)
    await asyncio.gather(wyoming.close(), http.close() if http is not None else asyncio.sleep(0))
    await pool.close(wait=max(_CUT_OFF, start + grace - loop.time()))
    _LOGGER.info("Stopped")


async def _within(work: Awaitable[None], deadline: float) -> bool:
    """Await ``work`` until the loop time ``deadline``; False if it was not done by then."""
    try:
        async with asyncio.timeout_at(deadline):
            await work
    except TimeoutError:
        return False
    return True


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

"""Listening sockets of our own, for both front doors.

Every accepted connection is counted against the client limits (:mod:`.clients`);
the one over a cap gets a short answer in its front door's protocol and is closed
at once. Running out of file descriptors pauses accepting for a moment, with one
log line now and then, instead of asyncio's own accept loop, which on Python 3.11
logs a traceback per attempt and schedules a retry for each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..errors import PolyttsError
from .clients import Place, Places, client_address

_LOGGER = logging.getLogger(__name__)

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BACKOFF = 0.5
"""Seconds accepting pauses when the process is out of file descriptors."""

_WARN_EVERY = 30.0
"""Seconds between two log lines about refused connections or exhausted descriptors."""

_BACKLOG = 128

_SEND_BUFFER = 64 * 1024
"""Bytes of the kernel's send buffer per connection (Linux doubles it): about three
seconds of 22 kHz speech. Left to itself the kernel grows it to megabytes, and a client
that reads nothing would let synthesis run minutes ahead before any write waited."""

Serve = Callable[[socket.socket, Place], Awaitable[None]]
"""Serves one accepted (non-blocking) socket; it owns the client's place from then on."""

Refusal = Callable[[PolyttsError], bytes]
"""What a refused client is sent, in its front door's protocol, before the socket closes."""


class _Throttled:
    """A warning logged at most once per ``_WARN_EVERY`` seconds, counting the rest."""

    def __init__(self) -> None:
        self._last = -_WARN_EVERY
        self._quiet = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < _WARN_EVERY:
            self._quiet += 1
            return
        more = f" (and {self._quiet} more since the last line)" if self._quiet else ""
        _LOGGER.warning(message + more, *args)
        self._last, self._quiet = now, 0


def bind_tcp(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` stands for (as asyncio binds them)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_unix(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale one left there is replaced)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def raise_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit, where it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as err:
            _LOGGER.warning("Cannot raise the open-file limit from %d: %s", soft, err)
            return
        _LOGGER.debug("Open-file limit raised from %d to %d", soft, wanted)


class Listener:
    """Accepts connections on ``sockets`` within the connection limits."""

    def __init__(
        self,
        name: str,
        sockets: list[socket.socket],
        connections: Places,
        serve: Serve,
        refusal: Refusal,
    ) -> None:
        self.name = name
        self.sockets = sockets
        self._connections = connections
        self._serve = serve
        self._refusal = refusal
        self._accepting: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()
        self._refused = _Throttled()
        self._exhausted = _Throttled()

    @property
    def port(self) -> int | None:
        """The TCP port listened on (None for a Unix socket)."""
        address = self.sockets[0].getsockname()
        return address[1] if isinstance(address, tuple) else None

    def start(self) -> None:
        self._accepting = [asyncio.create_task(self._accept(sock)) for sock in self.sockets]

    def stop_listening(self) -> None:
        """Accept no more connections; those open go on."""
        for task in self._accepting:
            task.cancel()
        self._accepting = []
        for sock in self.sockets:
            if sock.family == socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    Path(sock.getsockname()).unlink(missing_ok=True)
            sock.close()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as err:
                if err.errno in _OUT_OF_RESOURCES:
                    self._exhausted.warning(
                        "%s: cannot accept connections (%s); pausing %g s at a time",
                        self.name,
                        err.strerror,
                        _BACKOFF,
                    )
                    await asyncio.sleep(_BACKOFF)
                continue
            self._admit(conn, client_address(peer))

    def _admit(self, conn: socket.socket, client: str) -> None:
        try:
            place = self._connections.take(client)
        except PolyttsError as err:
            self._refused.warning("%s: refused a connection: %s", self.name, err)
            _refuse(conn, self._refusal(err))
            return
        conn.setblocking(False)
        with contextlib.suppress(OSError):  # not every socket family has the option
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        task = asyncio.create_task(self._served(conn, place))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _served(self, conn: socket.socket, place: Place) -> None:
        try:
            await self._serve(conn, place)
        except Exception:  # one connection's failure must not stop the others
            _LOGGER.exception("%s: failed to serve a connection", self.name)
            place.release()
            conn.close()


def _refuse(conn: socket.socket, answer: bytes) -> None:
    """Send ``answer`` if it fits the socket's buffer, then close; never waits."""
    conn.setblocking(False)
    with contextlib.suppress(OSError):
        conn.send(answer)
        conn.shutdown(socket.SHUT_WR)
        # Read what the client already sent, so closing does not reset the connection
        # (and discard the answer) because of unread data.
        conn.recv(65536)
    conn.close()

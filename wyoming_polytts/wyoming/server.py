"""The Wyoming front door's server: listens on ``tcp://`` or ``unix://`` and runs one
:class:`~.handler.TtsEventHandler` per accepted connection, or serves the one client
on stdin and stdout (``stdio://``, as a child process of another program).

The accept loop is our own (:mod:`.listener`), so connections are counted against the
client limits and a shutdown can stop listening, cut off requests and close every
connection, using only the ``wyoming`` library's event classes and functions.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from wyoming.error import Error
from wyoming.event import write_event

from ..errors import ConfigError, PolyttsError
from ..net.clients import Clients, Place
from ..net.listener import Listener, bind_tcp, bind_unix
from ..pool.pool import EnginePool
from ..speech.catalog import Catalog
from .handler import HandlerSettings, TtsEventHandler

_CLOSE_WAIT = 0.25
"""Seconds :meth:`WyomingServer.close` waits for handlers to finish after closing them."""


class WyomingServer:
    """Accepts Wyoming connections and answers them."""

    def __init__(
        self, catalog: Catalog, pool: EnginePool, settings: HandlerSettings, clients: Clients
    ) -> None:
        self._catalog = catalog
        self._pool = pool
        self._settings = settings
        self._clients = clients
        self._listener: Listener | None = None
        self._stdio: asyncio.Task[None] | None = None
        self._handlers: dict[TtsEventHandler, asyncio.Task[None] | None] = {}

    @property
    def port(self) -> int | None:
        """The TCP port listened on, once started."""
        return self._listener.port if self._listener is not None else None

    async def start(self, uri: str, on_stdio_end: Callable[[], None] | None = None) -> None:
        """Listen on ``uri``; a :class:`ConfigError` says why it cannot.

        With ``stdio://`` the one client is whoever holds our stdin and stdout (a parent
        process); when it closes our stdin, ``on_stdio_end`` is called.
        """
        if urlparse(uri).scheme == "stdio":
            place = self._clients.connections.take("local")
            conn = asyncio.create_task(self._serve_stdio(place, on_stdio_end))
            self._stdio = conn
            return
        self._listener = Listener(
            "Wyoming", _bind(uri), self._clients.connections, self._serve, refusal
        )
        self._listener.start()

    def stop_listening(self) -> None:
        """Accept no new connections; open ones go on."""
        if self._listener is not None:
            self._listener.stop_listening()

    async def close(self) -> None:
        """Close every connection and wait briefly for their handlers to end."""
        self.stop_listening()
        for handler in self._handlers:
            handler.close()
        tasks = {task for task in self._handlers.values() if task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_WAIT)

    async def _serve(self, conn: socket.socket, place: Place) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            await self._run_handler(reader, writer, place)
        finally:
            place.release()

    async def _serve_stdio(self, place: Place, on_end: Callable[[], None] | None) -> None:
        try:
            reader, writer = await stdio_streams()
            await self._run_handler(reader, writer, place)
        finally:
            place.release()
            if on_end is not None:
                on_end()

    async def _run_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, place: Place
    ) -> None:
        handler = TtsEventHandler(
            self._catalog, self._pool, self._settings, self._clients, reader, writer, place.client
        )
        self._handlers[handler] = asyncio.current_task()
        try:
            await handler.run()
        finally:
            del self._handlers[handler]


async def stdio_streams() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Our stdin and stdout as streams. Whatever else writes to stdout afterwards (a
    library's print) goes to stderr instead, so it cannot break the protocol."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), protocol_out
    )
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


def refusal(err: PolyttsError) -> bytes:
    """An ``error`` event, as bytes, for a client refused before it was served."""
    data = io.BytesIO()
    write_event(Error(text=str(err), code=err.code).event(), data)
    return data.getvalue()


def _bind(uri: str) -> list[socket.socket]:
    parsed = urlparse(uri)
    try:
        if parsed.scheme == "tcp" and parsed.hostname is not None and parsed.port is not None:
            return bind_tcp(parsed.hostname, parsed.port)
        if parsed.scheme == "unix" and parsed.path:
            return [bind_unix(Path(parsed.path))]
    except OSError as err:
        raise ConfigError(f"wyoming.uri: cannot listen on {uri} ({err.strerror})") from err
    raise ConfigError(f"wyoming.uri: expected tcp://HOST:PORT or unix://PATH, got {uri!r}")

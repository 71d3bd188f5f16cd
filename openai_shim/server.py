"""The HTTP server of the OpenAI app: aiohttp's request handling behind our own listener.

Connections are accepted by :class:`wyoming_polytts.net.listener.Listener`, so they count
against the same client limits as Wyoming's; each is handed to aiohttp's protocol,
wrapped only to give the client's place back when the connection ends.
"""

from __future__ import annotations

import asyncio
import json
import socket
from http import HTTPStatus

from aiohttp import web

from wyoming_polytts.errors import PolyttsError
from wyoming_polytts.net.clients import Place
from wyoming_polytts.net.listener import Listener, Serve

from .errors import ApiError


class HttpServer:
    """The app's runner and its listener, started and stopped together."""

    def __init__(self, runner: web.AppRunner, listener: Listener) -> None:
        self.runner = runner
        self.listener = listener

    def stop_listening(self) -> None:
        """Accept no new connections; open ones go on."""
        self.listener.stop_listening()

    async def close(self) -> None:
        """Stop listening and close every connection (aiohttp's clean-up)."""
        self.stop_listening()
        await self.runner.cleanup()


def serving(runner: web.AppRunner) -> Serve:
    """Hands accepted connections to ``runner``'s aiohttp server (set up already)."""
    server = runner.server
    assert server is not None, "the runner is not set up"

    async def serve(conn: socket.socket, place: Place) -> None:
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: _Counted(server(), place), conn)

    return serve


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection; gives the client's place back at its end."""

    def __init__(self, inner: asyncio.Protocol, place: Place) -> None:
        self._inner = inner
        self._place = place

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            self._place.release()


def refusal(err: PolyttsError) -> bytes:
    """A complete HTTP response with OpenAI's error body, for a client refused before
    it was served."""
    error = ApiError.from_polytts(err)
    body = json.dumps(error.body()).encode()
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body

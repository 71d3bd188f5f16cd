"""``python -m wyoming_polytts.healthcheck`` against the real server and against servers
that are not healthy: a closed port, a Wyoming server with no TTS program, a silent one."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.server import AsyncEventHandler, AsyncTcpServer

from wyoming_polytts.healthcheck import local_uri

from .helpers import TIMEOUT, ServerProcess, free_port


async def _healthcheck(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the health check as Docker does (a separate process); return (status, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wyoming_polytts.healthcheck",
        *args,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_healthy_against_the_real_server(server: ServerProcess) -> None:
    status, stderr = await _healthcheck("--uri", server.uri)
    assert (status, stderr) == (0, "")


async def test_default_uri_follows_polytts_uri(server: ServerProcess) -> None:
    """The images set POLYTTS_URI to a wildcard address; the check asks loopback."""
    status, stderr = await _healthcheck(env={"POLYTTS_URI": f"tcp://0.0.0.0:{server.port}"})
    assert (status, stderr) == (0, "")


async def test_unhealthy_on_a_closed_port() -> None:
    uri = f"tcp://127.0.0.1:{free_port()}"
    status, stderr = await _healthcheck("--uri", uri)
    assert status == 1
    assert stderr.startswith(f"unhealthy: {uri}: cannot connect"), stderr


class _Answer(AsyncEventHandler):
    """Answers describe with a fixed info, or (info None) never answers."""

    def __init__(
        self, info: Info | None, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.info = info

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type) and self.info is not None:
            await self.write_event(self.info.event())
        return True


@asynccontextmanager
async def _server(info: Info | None) -> AsyncIterator[str]:
    port = free_port()
    server = AsyncTcpServer("127.0.0.1", port)
    await server.start(partial(_Answer, info))
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        await server.stop()


async def test_unhealthy_without_a_tts_program() -> None:
    async with _server(Info()) as uri:
        status, stderr = await _healthcheck("--uri", uri)
    assert status == 1
    assert "offers no installed TTS program" in stderr, stderr


async def test_unhealthy_when_no_info_comes() -> None:
    async with _server(None) as uri:
        status, stderr = await _healthcheck("--uri", uri, "--timeout", "0.5")
    assert status == 1
    assert "no info answer within 0.5 s" in stderr, stderr


def test_local_uri() -> None:
    assert local_uri("tcp://0.0.0.0:10200") == "tcp://127.0.0.1:10200"
    assert local_uri("tcp://[::]:10200") == "tcp://127.0.0.1:10200"
    assert local_uri("tcp://192.0.2.7:10200") == "tcp://192.0.2.7:10200"
    assert local_uri("unix:///run/polytts.sock") == "unix:///run/polytts.sock"

"""SIGTERM on the real server process: requests in progress finish, new connections are
refused, engines are unloaded and the process exits 0 within ``shutdown_grace``; a
second SIGTERM exits at once; an engine stuck in a call does not hold the exit."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from .conftest import Transcriber
from .figures import record
from .helpers import (
    TIMEOUT,
    ServerProcess,
    Speech,
    assert_speech_like,
    free_port,
    get_json,
    read_until,
    synthesize,
)

HTTP_TEXT = "The front door is locked. The lights in the kitchen are off. " * 4
STREAM = [
    "The front door is locked. The lights",  # a sentence is complete once the next starts
    " in the kitchen are off. The garage door is closed.",
    " The heating is set to twenty degrees. Good night.",
]


def _start(tmp: Path, grace: float) -> ServerProcess:
    return ServerProcess(tmp, {"shutdown_grace": grace}).start()


@pytest.fixture
def server_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with the test's ``shutdown_grace`` (parametrized indirectly)."""
    process = _start(tmp_path, request.param)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait()


def _terminate(server: ServerProcess) -> float:
    """Send SIGTERM, wait until the server says it is stopping; when it was sent."""
    assert server.process is not None
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    deadline = sent + TIMEOUT
    while "Stopping:" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.02)
    return sent


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def _exit_code(server: ServerProcess, within: float) -> int:
    assert server.process is not None
    return server.process.wait(timeout=within)


async def _open_stream(client: AsyncTcpClient, first: str) -> tuple[Speech, asyncio.Task[Speech]]:
    """Start a Home Assistant style stream and wait until its first audio arrives."""
    speech = Speech()
    await client.write_event(SynthesizeStart().event())
    await client.write_event(SynthesizeChunk(text=first).event())
    reader = asyncio.create_task(read_until(client, speech, "synthesize-stopped"))
    deadline = time.monotonic() + TIMEOUT
    while not speech.audio:
        assert time.monotonic() < deadline and not reader.done(), speech.events
        await asyncio.sleep(0.01)
    return speech, reader


@pytest.mark.parametrize("server_process", [30.0], indirect=True)
async def test_sigterm_lets_requests_in_progress_finish(
    server_process: ServerProcess, transcriber: Transcriber
) -> None:
    server = server_process
    url = f"{server.base_url}/audio/speech"
    body = {"input": HTTP_TEXT, "response_format": "pcm"}
    async with (
        AsyncTcpClient("127.0.0.1", server.port) as streaming,
        AsyncTcpClient("127.0.0.1", server.port) as idle,
        aiohttp.ClientSession() as session,
        session.post(url, json=body) as response,
    ):
        assert response.status == 200
        pcm = bytearray(await response.content.readany())
        speech, reading = await _open_stream(streaming, STREAM[0])

        sent = await asyncio.to_thread(_terminate, server)
        assert _refused(server.port), "a new Wyoming connection was accepted"
        assert _refused(server.http_port), "a new HTTP connection was accepted"
        late = await synthesize(idle, "Too late.")
        assert [e.code for e in late.errors] == ["server-shutting-down"]

        for chunk in STREAM[1:]:
            await streaming.write_event(SynthesizeChunk(text=chunk).event())
        await streaming.write_event(Synthesize(text="".join(STREAM)).event())
        await streaming.write_event(SynthesizeStop().event())
        await asyncio.wait_for(reading, TIMEOUT)
        async for piece in response.content.iter_any():
            pcm += piece

    assert not speech.errors, speech.errors
    assert "audio-stop" in [event.type for event in speech.events]
    transcriber.assert_says(speech.samples, speech.rate, "".join(STREAM), max_wer=0.2)
    assert_speech_like(np.frombuffer(bytes(pcm), "<i2"), 24_000, HTTP_TEXT)

    code = await asyncio.to_thread(_exit_code, server, 30.0)
    waited = time.monotonic() - sent
    assert code == 0, server.log()
    assert waited < 30.0
    record("shutdown", "in_flight_finished_exit_s", round(waited, 1))
    log = server.log()
    assert "Unloaded engine piper (shutting down)" in log
    assert "still running after" not in log and "Traceback" not in log


LONG_TEXT = "The front door is locked and the lights in the kitchen are off. " * 60
"""About four minutes of speech: far more than a 2-second grace lets finish."""


async def _sse_events(response: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    """The decoded events of an SSE speech response, until the server ends it."""
    events = []
    async for line in response.content:
        if line.startswith(b"data: "):
            events.append(json.loads(line[6:]))
    return events


async def _pcm_until_cut(response: aiohttp.ClientResponse) -> bool:
    """Read a chunked audio body; True when it ended without its final chunk."""
    try:
        async for _ in response.content.iter_any():
            pass
    except aiohttp.ClientPayloadError:
        return True
    return False


@pytest.mark.parametrize("server_process", [2.0], indirect=True)
async def test_requests_still_running_after_the_grace_are_cut_off_with_errors(
    server_process: ServerProcess,
) -> None:
    """Six long requests (two Wyoming, four HTTP) outlive a 2 s grace: each client hears
    why it was cut off, and the process exits within the grace plus a second."""
    server = server_process
    url = f"{server.base_url}/audio/speech"
    bodies = [
        {"input": LONG_TEXT[:4000], "response_format": fmt, **extra}
        for fmt, extra in (
            ("pcm", {}),
            ("mp3", {}),
            ("wav", {}),
            ("mp3", {"stream_format": "sse"}),
        )
    ]
    async with (
        AsyncTcpClient("127.0.0.1", server.port) as streaming,
        AsyncTcpClient("127.0.0.1", server.port) as one_shot,
        aiohttp.ClientSession() as session,
    ):
        _, stream_reading = await _open_stream(streaming, STREAM[0])  # never stopped
        await one_shot.write_event(Synthesize(text=LONG_TEXT).event())
        shot = asyncio.create_task(read_until(one_shot, Speech(), "audio-stop", "error"))
        responses = [await session.post(url, json=body) for body in bodies]
        assert [r.status for r in responses] == [200] * 4
        # Every client keeps reading, so nothing waits on a full socket buffer.
        reading = asyncio.gather(
            asyncio.gather(*(_pcm_until_cut(r) for r in responses[:3])),
            _sse_events(responses[3]),
            stream_reading,
            shot,
        )
        sent = await asyncio.to_thread(_terminate, server)
        cut, events, stream_speech, shot_speech = await asyncio.wait_for(reading, TIMEOUT)
        for response in responses:
            response.release()
    code = await asyncio.to_thread(_exit_code, server, TIMEOUT)
    waited = time.monotonic() - sent
    assert code == 0, server.log()
    assert [e.code for e in stream_speech.errors] == ["server-shutting-down"]
    assert stream_speech.events[-1].type == "synthesize-stopped"
    assert [e.code for e in shot_speech.errors] == ["server-shutting-down"]
    assert cut == [True, True, True], "an audio body ended as if it were complete"
    assert events[-1]["type"] == "error", events[-1]
    assert events[-1]["error"]["code"] == "server_shutting_down"
    assert waited < 2.0 + 1.0, f"exited {waited:.2f} s after SIGTERM with a 2 s grace"
    record("shutdown", "grace_2s_six_streams_exit_s", round(waited, 2))
    log = server.log()
    assert "6 request(s) still running after 2 s; cutting them off" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("server_process", [60.0], indirect=True)
async def test_a_second_sigterm_exits_at_once(server_process: ServerProcess) -> None:
    server = server_process
    assert server.process is not None
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        _, reading = await _open_stream(client, STREAM[0])  # keeps the server draining
        await asyncio.to_thread(_terminate, server)
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(_exit_code, server, 10.0)
        with pytest.raises(AssertionError, match="server closed the connection"):
            await asyncio.wait_for(reading, TIMEOUT)
    waited = time.monotonic() - sent
    assert code == 128 + signal.SIGTERM, server.log()
    assert waited < 10.0
    record("shutdown", "second_sigterm_exit_s", round(waited, 2))
    assert "Second SIGTERM: exiting at once" in server.log()


class _Silent(AsyncEventHandler):
    """A Wyoming TTS server that lists one voice and never answers a synthesis."""

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            who = Attribution(name="test", url="")
            voice = TtsVoice(
                name="mute",
                description="never speaks",
                attribution=who,
                installed=True,
                version=None,
                languages=["en_US"],
            )
            program = TtsProgram(
                name="silent",
                description="never answers",
                attribution=who,
                installed=True,
                version="1",
                voices=[voice],
            )
            await self.write_event(Info(tts=[program]).event())
        return True


async def test_an_engine_stuck_in_a_call_does_not_hold_the_exit(tmp_path: Path) -> None:
    port = free_port()
    silent = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
    await silent.start(_Silent)
    upstream = {"uri": f"tcp://127.0.0.1:{port}", "concurrency": 1, "request_timeout": 600}
    config = {
        "shutdown_grace": 2,
        "pool": {"job_timeout": 1},
        "engines": {"piper": {}, "wyoming": upstream},
    }
    server = ServerProcess(tmp_path, config)
    try:
        await asyncio.to_thread(server.start)  # the loop keeps serving the silent upstream
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            stuck = await synthesize(client, "Anyone there?", "mute")
        assert [e.code for e in stuck.errors] == ["synthesis-timeout"]
        health = await get_json(server, "/health")
        assert health["engines"]["wyoming"]["stuck"] == 1
        assert health["status"] == "degraded"
        sent = await asyncio.to_thread(_terminate, server)
        code = await asyncio.to_thread(_exit_code, server, TIMEOUT)
        waited = time.monotonic() - sent
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
        await silent.stop()
    assert code == 0, server.log()
    assert waited < 2 + 10, "the exit waited for the stuck engine"
    record("shutdown", "stuck_engine_exit_s", round(waited, 1))
    log = server.log()
    assert "Engine wyoming is still inside 1 sentence(s); not unloading it" in log
    assert "Unloaded engine piper (shutting down)" in log
    assert "Exiting without waiting for polytts-wyoming" in log

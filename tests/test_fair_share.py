"""Cheap misbehaviour cannot lock others out (docs/operations/reliability.md): idle streams,
clients that never read, a pipelined flood, too many connections, and a process out
of file descriptors.

The misbehaving clients are raw sockets from other loopback addresses (127.0.0.2 and
up: all of 127.0.0.0/8 is loopback, and the server counts clients by address); the
normal client comes from 127.0.0.1 and must be served at once on both front doors.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import psutil
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, read_event, write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeStart

from bench.server_figures import holdings, scrape

from .figures import record
from .helpers import (
    TIMEOUT,
    ServerProcess,
    assert_speech_like,
    get_json,
    synthesize,
    synthesize_stream,
)

WRITE_TIMEOUT = 15.0
HOSTILE = 40
ADDRESSES = [f"127.0.0.{i}" for i in range(2, 7)]
"""Five addresses: 40 streams are eight from each, the default per-client limit."""

LONG_TEXT = "Lights off. " * 300
"""Minutes of speech in short sentences: quick to start, long to read."""
SAY = "The door is locked."
STREAM = ["The door is ", "locked. Good ", "night."]
SMALL_BUFFER = 4096
"""Receive buffer of a client that never reads: the server's writes soon wait on it."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = {"limits": {"write_timeout": WRITE_TIMEOUT}}
    process = ServerProcess(Path(tmp_path_factory.mktemp("fair")), config).start()
    yield process
    assert process.stop() == 0, process.log()


def _connect(port: int, source: str, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((source, 0))
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    return sock


def _events(*events: Event) -> bytes:
    data = io.BytesIO()
    for event in events:
        write_event(event, data)
    return data.getvalue()


def _read_events(sock: socket.socket) -> list[Event]:
    """Everything the server sends until it closes the connection."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data.extend(chunk)
    stream = io.BytesIO(bytes(data))
    events = []
    while (event := read_event(stream)) is not None:
        events.append(event)
    return events


def _speech_request(text: str, port: int) -> bytes:
    body = json.dumps({"input": text, "response_format": "pcm"}).encode()
    return (
        f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _metric(server: ServerProcess, name: str) -> float:
    return (await scrape(server.http_port)).get(name, 0.0)


async def _until(check: object, what: str, timeout: float = TIMEOUT) -> float:
    """Poll the async ``check()`` until it is true; the seconds it took."""
    started = time.monotonic()
    while not await check():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, f"never: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _normal_client(server: ServerProcess) -> dict[str, float]:
    """Home Assistant's streaming sequence, a one-shot request and an HTTP request from
    127.0.0.1: each answered with audio; their times to first audio in ms."""
    figures = {}
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        started = time.perf_counter()
        speech, _ = await synthesize_stream(client, STREAM)
        assert not speech.errors, speech.errors
        assert speech.first_audio_at is not None
        figures["wyoming_stream_first_audio_ms"] = (speech.first_audio_at - started) * 1000
        assert_speech_like(speech.samples, speech.rate, "".join(STREAM))
        started = time.perf_counter()
        speech = await synthesize(client, SAY)
        assert not speech.errors, speech.errors
        assert speech.first_audio_at is not None
        figures["wyoming_first_audio_ms"] = (speech.first_audio_at - started) * 1000
    body = {"input": SAY, "response_format": "pcm"}
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.post(f"{server.base_url}/audio/speech", json=body) as response:
            assert response.status == 200, await response.text()
            pcm = bytearray(await response.content.readany())
            figures["http_first_byte_ms"] = (time.perf_counter() - started) * 1000
            pcm += await response.read()
    assert_speech_like(np.frombuffer(bytes(pcm), "<i2"), 24_000, SAY)
    return figures


async def test_idle_streams_hold_no_place(server: ServerProcess) -> None:
    idle = []
    try:
        for i in range(HOSTILE):
            sock = _connect(server.port, ADDRESSES[i % len(ADDRESSES)])
            sock.sendall(_events(SynthesizeStart().event()))
            idle.append(sock)

        async def all_open() -> bool:
            return await _metric(server, "polytts_open_streams") == HOSTILE

        await _until(all_open, f"{HOSTILE} open streams")
        health = await get_json(server, "/health")
        assert health["engines"]["piper"]["requests"] == 0, "an idle stream took a place"
        figures = await _normal_client(server)

        # The ninth stream from one address is refused, and still ended properly.
        over = _connect(server.port, ADDRESSES[0])
        over.sendall(_events(SynthesizeStart().event()))
        over.shutdown(socket.SHUT_WR)
        events = await asyncio.to_thread(_read_events, over)
        over.close()
    finally:
        for sock in idle:
            sock.close()
    assert [e.type for e in events] == ["error", "synthesize-stopped"], events
    assert events[0].data["code"] == "too-many-streams"
    assert "at most 8 per client address" in events[0].data["text"]
    for name, value in figures.items():
        record("fair-share", f"idle_streams_{HOSTILE}_{name}", round(value))


async def test_clients_that_never_read_are_dropped(server: ServerProcess) -> None:
    stalled = []
    try:
        for i in range(HOSTILE):
            source = ADDRESSES[i % len(ADDRESSES)]
            if i % 2:
                sock = _connect(server.http_port, source, SMALL_BUFFER)
                sock.sendall(_speech_request(LONG_TEXT, server.http_port))
            else:
                sock = _connect(server.port, source, SMALL_BUFFER)
                sock.sendall(_events(Synthesize(text=LONG_TEXT).event()))
            stalled.append(sock)
        started = time.monotonic()

        async def parked() -> bool:
            # Most have had their first audio: their requests are open, but only those
            # still waiting for a first audio hold a place in the engine's queue.
            metrics = await scrape(server.http_port)
            heard = sum(
                value
                for name, value in metrics.items()
                if name.startswith("polytts_time_to_first_audio_seconds_count")
            )
            return heard >= HOSTILE // 2

        await _until(parked, "first audio for half the stalled clients")
        figures = await _normal_client(server)
        figures["served_after_ms"] = (time.monotonic() - started) * 1000

        async def all_dropped() -> bool:
            # Dropped, and no work goes on for them: they never read, so synthesis stopped
            # a few sentences ahead of each (unbounded, it would run for minutes).
            piper = (await get_json(server, "/health"))["engines"]["piper"]
            return bool(piper["requests"] == piper["running"] == piper["waiting"] == 0)

        await _until(all_dropped, "stalled clients dropped", WRITE_TIMEOUT + TIMEOUT)
        dropped_after = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    log = server.log()
    assert "Dropping Wyoming client 127.0.0.2: it read nothing for 15 s" in log
    assert "Dropping HTTP client 127.0.0.3: it read nothing for 15 s" in log
    assert "Traceback" not in log
    for name, value in figures.items():
        record("fair-share", f"slow_readers_{HOSTILE}_{name}", round(value))
    record("fair-share", "slow_readers_all_dropped_after_s", round(dropped_after, 1))


async def test_a_pipelined_flood_stays_bounded(server: ServerProcess) -> None:
    assert server.process is not None
    sentences = "polytts_real_time_factor_count{engine=piper}"
    before = await holdings(server.process.pid, server.http_port)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, local_addr=(ADDRESSES[0], 0)
    )
    flood = _events(*(Synthesize(text="Hi.").event() for _ in range(12_000)))
    writer.write(flood)  # never drained: the client's side buffers what the server leaves
    await asyncio.sleep(2.0)
    during = await holdings(server.process.pid, server.http_port)
    writer.transport.abort()  # a reset, as a client that crashed
    await asyncio.sleep(1.0)
    after_a_second = await _metric(server, sentences)
    await asyncio.sleep(2.0)
    later = await _metric(server, sentences)
    health = await get_json(server, "/health")
    del reader

    assert during.tasks <= before.tasks + 3, (before, during)
    assert during.rss - before.rss < 32 * 2**20, (before, during)
    assert later == after_a_second, "sentences were synthesized for a client that left"
    assert health["engines"]["piper"]["requests"] == 0
    record("fair-share", "flood_events", 12_000)
    record("fair-share", "flood_tasks_before_during", [before.tasks, during.tasks])
    record("fair-share", "flood_rss_growth_mib", round((during.rss - before.rss) / 2**20, 1))
    figures = await _normal_client(server)
    for name, value in figures.items():
        record("fair-share", f"after_flood_{name}", round(value))


def _held(port: int, source: str) -> socket.socket:
    """A Wyoming connection the server has accepted and answered (a describe)."""
    sock = _connect(port, source)
    sock.sendall(_events(Describe().event()))
    with sock.makefile("rb") as answers:
        event = read_event(answers)
    assert event is not None and event.type == "info", event
    return sock


async def test_connection_limits_refuse_only_the_one_over(tmp_path: Path) -> None:
    config = {"limits": {"max_connections": 8, "max_connections_per_client": 3}}
    server = ServerProcess(tmp_path, config).start()
    held: list[socket.socket] = []
    try:
        held += [_held(server.port, "127.0.0.2") for _ in range(3)]
        over = _connect(server.port, "127.0.0.2")
        events = await asyncio.to_thread(_read_events, over)
        assert [e.type for e in events] == ["error"], events
        assert events[0].data["code"] == "too-many-connections"
        assert "at most 3 per client address" in events[0].data["text"]
        # Both front doors count together.
        over_http = _connect(server.http_port, "127.0.0.2")
        over_http.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await asyncio.to_thread(over_http.recv, 65536)
        over_http.close()
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 429"), answer
        assert json.loads(body)["error"]["code"] == "too_many_connections"
        figures = await _normal_client(server)  # another address is served

        held += [_held(server.port, "127.0.0.3") for _ in range(3)]
        held += [_held(server.port, "127.0.0.4") for _ in range(2)]
        full = _connect(server.port, "127.0.0.5")
        events = await asyncio.to_thread(_read_events, full)
        assert events[0].data["code"] == "too-many-connections"
        assert "the server holds 8 connections" in events[0].data["text"]
        for sock in held:
            sock.close()
        held = []
        await asyncio.sleep(0.5)  # the server notices the closed connections
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            speech = await synthesize(client, SAY)
        assert not speech.errors
    finally:
        for sock in held:
            sock.close()
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log()
    for name, value in figures.items():
        record("fair-share", f"at_connection_cap_{name}", round(value))


async def test_out_of_file_descriptors_pauses_accepting(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start(file_limit=(96, 96))
    flood: list[socket.socket] = []
    try:
        for i in range(160):
            sock = socket.socket()
            sock.bind((ADDRESSES[i % len(ADDRESSES)], 0))
            sock.settimeout(0.2)
            try:
                sock.connect(("127.0.0.1", server.port))
            except OSError:
                sock.close()
                continue
            flood.append(sock)
        await asyncio.sleep(3.0)  # the server keeps running out while they stay
        log = server.log()
    finally:
        for sock in flood:
            sock.close()
    await asyncio.sleep(1.0)
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, SAY)
    assert not speech.errors
    assert server.stop() == 0, server.log()
    warnings = log.count("cannot accept connections (Too many open files)")
    assert 1 <= warnings <= 2, log[-3000:]
    assert "Traceback" not in log
    record("fair-share", "fd_exhaustion_log_bytes", len(log.encode()))
    record("fair-share", "fd_exhaustion_connections_made", len(flood))


def test_the_open_file_limit_is_raised_at_start(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start(file_limit=(256, 4096))
    try:
        assert server.process is not None
        soft, hard = psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE)
    finally:
        assert server.stop() == 0, server.log()
    assert (soft, hard) == (4096, 4096)

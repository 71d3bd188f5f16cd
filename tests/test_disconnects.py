"""1,000 clients, Wyoming and HTTP, that vanish at random points of a request: halfway
through sending it, just after, or once the answer has started; some close their
connection, some reset it. Afterwards every engine slot is free, no work goes on for
them, and the server holds no more file descriptors, threads or tasks than before.

The requests are real protocol bytes (events written by the wyoming library, HTTP/1.1
requests) on raw sockets, so a client can stop at any byte; one seeded generator
chooses, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.event import write_event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from bench.server_figures import holdings, scrape, thread_ceiling, wait_idle

from .figures import record
from .helpers import ServerProcess, assert_speech_like, synthesize

CLIENTS = 1000
WARMUP_CLIENTS = 100
"""Clients vanishing before the reference figures are taken (thread pools fill up)."""

AT_ONCE = 48
SEED = 1011
ANSWER_TIMEOUT = 60.0
FD_SLACK = 4
"""File descriptors the end may hold beyond the start (sockets still closing)."""

TEXTS = ("Hi.", "Lights off.", "Lights off. The door is locked. Good night.")
KINDS = ("wyoming one-shot", "wyoming stream", "http stream", "http whole", "http sse")
POINTS = ("connect", "mid-request", "after-request", "mid-answer")
WEIGHTS = (1, 3, 5, 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Room for every client at once in the queue and the stream limit (all of them come
    from one address), so each reaches the engine."""
    config = {
        "pool": {"queue_size": 2 * AT_ONCE},
        "limits": {"max_streams_per_client": 2 * AT_ONCE},
    }
    process = ServerProcess(Path(tmp_path_factory.mktemp("disconnects")), config).start()
    yield process
    assert process.stop() == 0, process.log()


def _wyoming_bytes(kind: str, text: str) -> bytes:
    if kind == "wyoming one-shot":
        events = [Synthesize(text=text).event()]
    else:  # cut off mid-request, the stream is left open
        events = [SynthesizeStart().event()]
        events += [SynthesizeChunk(text=f"{word} ").event() for word in text.split(" ")]
        events += [Synthesize(text=text).event(), SynthesizeStop().event()]
    data = io.BytesIO()
    for event in events:
        write_event(event, data)
    return data.getvalue()


def _http_bytes(kind: str, text: str, port: int) -> bytes:
    body: dict[str, object] = {"input": text, "response_format": "pcm", "stream": True}
    if kind == "http whole":
        body.update(stream=False, response_format="wav")
    elif kind == "http sse":
        body.update(stream_format="sse", response_format="mp3")
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _vanish(server: ServerProcess, rng: random.Random) -> str:
    """One client: connect, send, maybe read, and leave at a random point."""
    kind, text = rng.choice(KINDS), rng.choice(TEXTS)
    point = rng.choices(POINTS, WEIGHTS)[0]
    wyoming = kind.startswith("wyoming")
    port = server.port if wyoming else server.http_port
    request = _wyoming_bytes(kind, text) if wyoming else _http_bytes(kind, text, port)
    reset = rng.random() < 0.5
    pause, want = rng.uniform(0, 0.1), rng.randint(1, 4096)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if point == "mid-request":
            writer.write(request[: rng.randint(1, len(request) - 1)])
        elif point != "connect":
            writer.write(request)
        await writer.drain()
        if point == "after-request":
            await asyncio.sleep(pause)
        elif point == "mid-answer":
            got = 0
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while got < want and (data := await reader.read(want - got)):
                    got += len(data)
    finally:
        if reset:  # RST instead of FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
    return f"{kind} {point}"


async def _storm(server: ServerProcess, clients: int, rng: random.Random) -> Counter[str]:
    slots = asyncio.Semaphore(AT_ONCE)
    done: Counter[str] = Counter()

    async def one() -> None:
        async with slots:
            done[await _vanish(server, rng)] += 1

    await asyncio.gather(*(one() for _ in range(clients)))
    return done


async def test_a_thousand_vanishing_clients_leave_nothing_behind(server: ServerProcess) -> None:
    assert server.process is not None
    pid, http_port = server.process.pid, server.http_port
    rng = random.Random(SEED)
    await _storm(server, WARMUP_CLIENTS, rng)
    await wait_idle(http_port)
    before = await holdings(pid, http_port)
    metrics_before = await scrape(http_port)

    started = time.monotonic()
    done = await _storm(server, CLIENTS, rng)
    health = await wait_idle(http_port)
    seconds = time.monotonic() - started
    after = await holdings(pid, http_port)
    metrics = await scrape(http_port)
    await asyncio.sleep(1.0)
    later = await scrape(http_port)

    assert sum(done.values()) == CLIENTS
    assert {key.rsplit(" ", 1)[1] for key in done} == set(POINTS)
    piper = health["engines"]["piper"]
    assert (piper["requests"], piper["running"], piper["waiting"], piper["stuck"]) == (0,) * 4
    for gauge in ("running_jobs", "queue_depth", "active_requests", "stuck_jobs"):
        assert metrics[f"polytts_{gauge}{{engine=piper}}"] == 0
    sentences = "polytts_real_time_factor_count{engine=piper}"
    assert later[sentences] == metrics[sentences], "sentences still synthesized for nobody"
    cancelled = sum(
        value - metrics_before.get(name, 0.0)
        for name, value in metrics.items()
        if name.startswith("polytts_requests_total") and "outcome=cancelled" in name
    )
    assert cancelled > CLIENTS / 10, "too few requests reached the engine to prove anything"
    assert after.threads <= max(before.threads, thread_ceiling(health))
    assert after.tasks <= before.tasks
    assert after.fds <= before.fds + FD_SLACK
    assert "Traceback" not in server.log()

    for name, value in (
        ("clients", CLIENTS),
        ("seconds", round(seconds, 1)),
        ("cancelled_requests", int(cancelled)),
        ("slots_busy_after", piper["requests"] + piper["running"] + piper["waiting"]),
        ("fds_before", before.fds),
        ("fds_after", after.fds),
        ("threads_before", before.threads),
        ("threads_after", after.threads),
        ("tasks_before", before.tasks),
        ("tasks_after", after.tasks),
    ):
        record("disconnects", name, value)

    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, "The door is locked.")
    assert not speech.errors
    assert_speech_like(speech.samples, speech.rate, "The door is locked.")
    body = {"input": "The door is locked.", "response_format": "pcm"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/audio/speech", json=body) as response,
    ):
        assert response.status == 200
        pcm = np.frombuffer(await response.read(), "<i2")
    assert_speech_like(pcm, 24_000, "The door is locked.")

"""Shared test helpers: a real server process and describe (from ``bench``, which starts
servers the same way), Wyoming client calls, audio checks."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import numpy as np
import psutil
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeVoice

from bench.server_process import ServerProcess as ServerProcess
from bench.server_process import free_port as free_port
from bench.wyoming_client import describe as describe
from bench.wyoming_client import send_stream
from wyoming_polytts.config import OpenAISettings
from wyoming_polytts.const import DEFAULT_WYOMING_URI

TIMEOUT = 60.0

DEFAULT_PORTS = (urlparse(DEFAULT_WYOMING_URI).port, OpenAISettings().port)
"""The server's default Wyoming and HTTP ports (the add-on's too), which a developer's own
server may hold while the tests run."""


@contextmanager
def default_ports_held() -> Iterator[None]:
    """Listen on 127.0.0.1 at :data:`DEFAULT_PORTS`, as a server a developer runs beside
    the tests would; a port that something else holds already serves as well."""
    with ExitStack() as stack:
        for port in DEFAULT_PORTS:
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                continue
            sock.listen()
        yield


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m wyoming_polytts`` with ``args`` and no POLYTTS_ variables, to its end;
    for command lines that stop at start-up (it would bind the configured ports)."""
    return subprocess.run(
        [sys.executable, "-m", "wyoming_polytts", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("POLYTTS_")},
    )


def checkout_files(repo: Path) -> list[str]:
    """The checkout's files as git sees them (what a clone of it holds): tracked ones and
    new ones git does not ignore, less those deleted in the work tree."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and os.path.lexists(repo / name)]


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses (host, port) process ``pid`` listens on."""
    connections = psutil.Process(pid).net_connections("tcp")
    return {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}


async def get_json(server: ServerProcess, path: str) -> Any:
    """GET ``path`` from the server's HTTP API; the decoded JSON of a 200 answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.http_port}{path}") as response,
    ):
        assert response.status == 200
        return await response.json()


async def post_speech(
    base_url: str, text: str, voice: str, response_format: str
) -> tuple[int, Any]:
    """POST ``{base_url}/audio/speech``: the status with the audio's bytes, or with the
    error body."""
    body = {"model": "tts-1", "input": text, "voice": voice, "response_format": response_format}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/audio/speech", json=body) as response,
    ):
        if response.status != 200:
            return response.status, await response.json()
        return response.status, await response.read()


@dataclass
class Speech:
    """What a server sent back for one request."""

    events: list[Event] = field(default_factory=list)
    starts: list[AudioStart] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    errors: list[Error] = field(default_factory=list)
    first_audio_at: float | None = None

    @property
    def rate(self) -> int:
        return self.starts[0].rate

    @property
    def samples(self) -> np.ndarray:
        return np.frombuffer(bytes(self.audio), dtype="<i2")

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def add(self, event: Event) -> None:
        self.events.append(event)
        if AudioStart.is_type(event.type):
            self.starts.append(AudioStart.from_event(event))
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (
                self.rate,
                2,
                1,
            ), "chunk format differs from audio-start"
            if self.first_audio_at is None:
                self.first_audio_at = time.perf_counter()
            self.audio.extend(chunk.audio)
        elif Error.is_type(event.type):
            self.errors.append(Error.from_event(event))


async def read_until(client: AsyncTcpClient, speech: Speech, *types: str) -> Speech:
    while True:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, "server closed the connection"
        speech.add(event)
        if event.type in types:
            return speech


def voice(name: str | None) -> SynthesizeVoice | None:
    return SynthesizeVoice(name=name) if name else None


async def synthesize(client: AsyncTcpClient, text: str, name: str | None = None) -> Speech:
    """One-shot synthesis; returns at audio-stop or error."""
    await client.write_event(Synthesize(text=text, voice=voice(name)).event())
    return await read_until(client, Speech(), "audio-stop", "error")


async def speak(port: int, text: str, name: str | None = None) -> Speech:
    """One-shot synthesis on a new connection."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        return await synthesize(client, text, name)


async def voices_by_name(port: int) -> dict[str, Any]:
    """The server's voices (``describe``), by name."""
    return {voice.name: voice for voice in (await describe(port)).tts[0].voices}


async def wait_for_voice(server: ServerProcess, name: str, installed: bool) -> Any:
    """Wait (at most 30 s) until voice ``name`` is listed with ``installed``; returns it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = (await voices_by_name(server.port)).get(name)
        if found is not None and found.installed is installed:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} never became installed={installed}: {server.log()[-3000:]}")


async def synthesize_stream(
    client: AsyncTcpClient,
    chunks: list[str],
    name: str | None = None,
    delay: float = 0.0,
) -> tuple[Speech, int]:
    """Home Assistant's streaming sequence (``bench.wyoming_client.send_stream``); also
    returns how many chunks were sent before the first audio arrived."""
    speech = Speech()
    sent_before_audio = len(chunks)

    def note(i: int) -> None:
        nonlocal sent_before_audio
        if speech.first_audio_at is not None and sent_before_audio == len(chunks):
            sent_before_audio = i

    reader = asyncio.create_task(read_until(client, speech, "synthesize-stopped"))
    await send_stream(client, chunks, name, delay, note)
    await reader
    return speech, sent_before_audio


def assert_speech_like(samples: np.ndarray, rate: int, text: str) -> None:
    """Not silence, finite, and a duration that fits the text (~8-25 chars/s)."""
    assert samples.size > 0
    audio = samples.astype(np.float64) / 32768.0 if samples.dtype == np.int16 else samples
    assert np.isfinite(audio).all()
    rms = float(np.sqrt(np.mean(np.square(audio))))
    assert rms > 0.01, f"audio is (nearly) silent: rms {rms:.4f}"
    duration = len(audio) / rate
    chars = len(text)
    assert chars / 25 <= duration <= chars / 6 + 1.0, f"{duration:.2f}s for {chars} characters"

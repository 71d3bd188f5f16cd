"""Shared test helpers: a real server process, Wyoming client calls, audio checks."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m wyoming_polytts`` on free loopback ports, with a config written for it."""

    def __init__(self, tmp: Path, config: dict[str, Any] | None = None) -> None:
        self.port = free_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        data = {"cache_dir": str(tmp / "cache"), "voices_dir": str(tmp / "voices")}
        data.update(config or {})
        openai = {"host": "127.0.0.1", "port": free_port(), **data.get("openai", {})}
        data["openai"] = openai
        self.http_port: int = openai["port"]
        """Port of the OpenAI-compatible API (a free one unless the config names one)."""
        self.config = data
        self.config_path = tmp / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
        self.source_args = ["--config", str(self.config_path)]
        """Where the server reads its configuration (an add-on test gives --options-file)."""
        self.log_path = tmp / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(
        self, extra_args: list[str] | None = None, *, file_limit: tuple[int, int] | None = None
    ) -> ServerProcess:
        """Start the server; ``file_limit`` sets its (soft, hard) limit on open files."""
        log = self.log_path.open("wb")

        def limit_files() -> None:
            if file_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, file_limit)

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wyoming_polytts",
                *self.source_args,
                "--uri",
                self.uri,
                *(extra_args or []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=limit_files,
        )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Block until the server has loaded its engines and accepts connections."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            if "Ready:" in self.log():
                # The OpenAI API starts listening before the Wyoming server.
                with socket.create_connection(("127.0.0.1", self.port), timeout=5):
                    return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready: {self.log()}")

    @property
    def base_url(self) -> str:
        """Base URL of the OpenAI-compatible API, as the openai SDK takes it."""
        return f"http://127.0.0.1:{self.http_port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


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


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), TIMEOUT)
            assert event is not None
            if Info.is_type(event.type):
                return Info.from_event(event)


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


async def synthesize_stream(
    client: AsyncTcpClient,
    chunks: list[str],
    name: str | None = None,
    delay: float = 0.0,
) -> tuple[Speech, int]:
    """Home Assistant's streaming sequence; also returns how many chunks were sent
    before the first audio arrived."""
    speech = Speech()
    await client.write_event(SynthesizeStart(voice=voice(name)).event())
    sent_before_audio = len(chunks)
    reader = asyncio.create_task(read_until(client, speech, "synthesize-stopped"))
    for i, chunk in enumerate(chunks):
        await client.write_event(SynthesizeChunk(text=chunk).event())
        await asyncio.sleep(delay)
        if speech.first_audio_at is not None and sent_before_audio == len(chunks):
            sent_before_audio = i + 1
    await client.write_event(Synthesize(text="".join(chunks), voice=voice(name)).event())
    await client.write_event(SynthesizeStop().event())
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

"""Timed Wyoming requests: one-shot and streamed synthesis, describe; and Home Assistant's
streaming sequence, which the tests send too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncClient, AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from wyoming_polytts.common.describe import request_info

from .texts import StreamPlan

TIMEOUT = 300.0
"""Seconds one request may take before it counts as an error."""

HOST = "127.0.0.1"


@dataclass
class Measurement:
    """What one request took, in seconds."""

    ttfa: float | None = None
    """Time to the first audio chunk (streaming: from the chunk ending the first sentence)."""

    total: float | None = None
    """Time to the end of the request."""

    audio: float = 0.0
    """Seconds of audio received."""

    stall: float = 0.0
    """Seconds a player starting at the first chunk would have waited for audio later."""

    error: str | None = None

    @property
    def rtf(self) -> float | None:
        """Real-time factor: synthesis time over audio duration."""
        if self.total is None or not self.audio:
            return None
        return self.total / self.audio


@dataclass
class Playback:
    """A player that starts at the first audio received and plays all of it in order."""

    started: float | None = None
    """When the first audio arrived (``time.perf_counter``)."""

    end: float = 0.0
    """When it runs out of the audio received so far."""

    stall: float = 0.0
    """Seconds it has waited for audio since it started."""

    def receive(self, now: float, seconds: float) -> None:
        """``seconds`` of audio arrived at ``now``."""
        if self.started is None:
            self.started = self.end = now
        self.stall += max(0.0, now - self.end)
        self.end = max(now, self.end) + seconds


class _Receiver:
    """Reads a server's answer, noting when audio starts and how much arrives."""

    def __init__(self, client: AsyncTcpClient) -> None:
        self._client = client
        self.playback = Playback()
        self.samples = 0
        self.rate = 0
        self.error: str | None = None

    async def until(self, *types: str) -> float:
        """Read events until one of ``types`` (or an error); return when it arrived."""
        while True:
            event = await self._client.read_event()
            if event is None:
                self.error = self.error or "server closed the connection"
                return time.perf_counter()
            if AudioChunk.is_type(event.type):
                now = time.perf_counter()
                chunk = AudioChunk.from_event(event)
                samples = len(chunk.audio) // (chunk.width * chunk.channels)
                self.playback.receive(now, samples / chunk.rate)
                self.samples += samples
                self.rate = chunk.rate
            elif AudioStart.is_type(event.type):
                self.rate = AudioStart.from_event(event).rate
            elif Error.is_type(event.type):
                self.error = Error.from_event(event).text
                if "synthesize-stopped" not in types:
                    return time.perf_counter()
            if event.type in types:
                return time.perf_counter()

    def measurement(self, started: float, first_from: float, ended: float) -> Measurement:
        first_audio_at = self.playback.started
        return Measurement(
            ttfa=None if first_audio_at is None else first_audio_at - first_from,
            total=ended - started,
            audio=self.samples / self.rate if self.rate else 0.0,
            stall=self.playback.stall,
            error=self.error,
        )


def _voice(name: str | None) -> SynthesizeVoice | None:
    return SynthesizeVoice(name=name) if name else None


async def one_shot(port: int, text: str, voice: str | None) -> Measurement:
    """``synthesize`` on a new connection, timed from sending it."""
    try:
        async with AsyncTcpClient(HOST, port) as client:
            receiver = _Receiver(client)
            started = time.perf_counter()
            await client.write_event(Synthesize(text=text, voice=_voice(voice)).event())
            ended = await asyncio.wait_for(receiver.until("audio-stop"), TIMEOUT)
            return receiver.measurement(started, started, ended)
    except (OSError, TimeoutError) as err:
        return Measurement(error=f"{type(err).__name__}: {err}")


async def send_stream(
    client: AsyncClient,
    chunks: Sequence[str],
    voice: str | None,
    delay: float,
    on_chunk: Callable[[int], object] | None = None,
) -> None:
    """Home Assistant's streaming sequence: synthesize-start, the chunks ``delay`` seconds
    apart, the compatibility synthesize with the whole text, synthesize-stop.

    ``on_chunk(i)`` is called as soon as chunk ``i`` is written. The answer is for the
    caller to read (concurrently: audio comes while chunks still go out).
    """
    await client.write_event(SynthesizeStart(voice=_voice(voice)).event())
    for i, chunk in enumerate(chunks):
        if i:
            await asyncio.sleep(delay)
        await client.write_event(SynthesizeChunk(text=chunk).event())
        if on_chunk is not None:
            on_chunk(i)
    await client.write_event(Synthesize(text="".join(chunks), voice=_voice(voice)).event())
    await client.write_event(SynthesizeStop().event())


async def streamed(port: int, plan: StreamPlan, voice: str | None, delay: float) -> Measurement:
    """Home Assistant's sequence (:func:`send_stream`), a chunk every ``delay`` s.

    Time to first audio counts from sending the chunk that ends the first
    sentence; total time from ``synthesize-start`` to ``synthesize-stopped``.
    """
    sent: dict[int, float] = {}  # chunk index -> when it was written

    try:
        async with AsyncTcpClient(HOST, port) as client:
            receiver = _Receiver(client)
            started = time.perf_counter()
            reading = asyncio.create_task(receiver.until("synthesize-stopped"))
            await send_stream(
                client, plan.chunks, voice, delay, lambda i: sent.setdefault(i, time.perf_counter())
            )
            ended = await asyncio.wait_for(reading, TIMEOUT)
            return receiver.measurement(started, sent.get(plan.first_sentence_end, started), ended)
    except (OSError, TimeoutError) as err:
        return Measurement(error=f"{type(err).__name__}: {err}")


async def describe(port: int) -> Info:
    """Ask for ``info`` on a new connection."""
    return (await timed_describe(port))[1]


async def timed_describe(port: int) -> tuple[float, Info]:
    """Seconds a ``describe`` took on a new connection (from connected to answered), and
    the answer."""
    async with AsyncTcpClient(HOST, port) as client:
        started = time.perf_counter()
        asking = request_info(client.read_event, client.write_event)
        info = await asyncio.wait_for(asking, TIMEOUT)
        return time.perf_counter() - started, info

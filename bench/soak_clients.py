"""The soak's clients: Wyoming and HTTP clients that request speech in a loop until a
deadline, one-shot and streaming by turns, and check every answer.

An answer counts as ``ok`` when it is whole (Wyoming: audio between audio-start
and audio-stop, a stream ended by synthesize-stopped; HTTP: 200 with a complete
body, SSE ending with ``speech.audio.done``), ``busy`` when the server said
``server-busy`` (the documented answer beyond ``pool.queue_size``), otherwise
it is an error, kept with its reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize, SynthesizeVoice

from .texts import TEXTS, stream_plan
from .wyoming_client import HOST, send_stream

REQUEST_TIMEOUT = 300.0
"""Seconds one request may take before it counts as an error."""

BUSY_PAUSE = 1.0
"""Seconds a client waits after a busy answer before its next request."""

CHUNK_DELAY = 0.02
"""Seconds between a streaming client's text chunks."""

_HTTP_MODES = (("pcm", "stream"), ("wav", "whole"), ("mp3", "stream"), ("opus", "sse"))
_BUSY = "busy"
_OK = "ok"
_KEPT_ERRORS = 20


@dataclass
class Tally:
    """How the requests of a run ended."""

    outcomes: Counter[str] = field(default_factory=Counter)
    """``wyoming one-shot ok``, ``http sse busy``...: front door, kind and outcome."""

    audio_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """The first few errors' reasons."""

    def add(self, kind: str, outcome: str, seconds: float = 0.0) -> None:
        label = outcome if outcome in (_OK, _BUSY) else "error"
        self.outcomes[f"{kind} {label}"] += 1
        self.audio_seconds += seconds
        if label == "error" and len(self.errors) < _KEPT_ERRORS:
            self.errors.append(f"{kind}: {outcome}")

    def count(self, outcome: str) -> int:
        return sum(n for key, n in self.outcomes.items() if key.endswith(f" {outcome}"))


async def _answer(client: AsyncTcpClient, until: str) -> tuple[str, float]:
    """Read one answer to its last event; the outcome and seconds of audio."""
    samples, rate, codes, stopped = 0, 0, [], False
    while True:
        event = await client.read_event()
        if event is None:
            return "connection closed early", 0.0
        if AudioStart.is_type(event.type):
            rate = AudioStart.from_event(event).rate
        elif AudioChunk.is_type(event.type):
            samples += len(AudioChunk.from_event(event).audio) // 2
        elif AudioStop.is_type(event.type):
            stopped = True
        elif Error.is_type(event.type):
            error = Error.from_event(event)
            codes.append(error.code)
            if until == "audio-stop":  # a one-shot answer ends with its error
                until = event.type
            if error.code != "server-busy":
                return f"error {error.code}: {error.text}", 0.0
        if event.type == until:
            break
    if codes:
        return _BUSY, 0.0
    if not stopped or not samples or not rate:
        return "answer without audio or audio-stop", 0.0
    return _OK, samples / rate


async def _wyoming_request(
    port: int, text: str, voice: str | None, streaming: bool
) -> tuple[str, float]:
    async with AsyncTcpClient(HOST, port) as client:
        if not streaming:
            named = SynthesizeVoice(name=voice) if voice else None
            await client.write_event(Synthesize(text=text, voice=named).event())
            return await asyncio.wait_for(_answer(client, "audio-stop"), REQUEST_TIMEOUT)
        reading = asyncio.create_task(_answer(client, "synthesize-stopped"))
        await send_stream(client, stream_plan(text).chunks, voice, CHUNK_DELAY)
        return await asyncio.wait_for(reading, REQUEST_TIMEOUT)


async def _http_request(
    session: aiohttp.ClientSession, url: str, text: str, voice: str | None, fmt: str, mode: str
) -> tuple[str, float]:
    body = {"model": "tts-1", "input": text, "response_format": fmt, "stream": mode != "whole"}
    if voice:
        body["voice"] = voice
    if mode == "sse":
        body["stream_format"] = "sse"
    async with session.post(url, json=body) as response:
        data = await response.read()
        if response.status == 503 and json.loads(data)["error"]["code"] == "server_busy":
            return _BUSY, 0.0
        if response.status != 200:
            return f"HTTP {response.status}: {data[:200]!r}", 0.0
    if mode == "sse":
        events = [json.loads(line[6:]) for line in data.decode().split("\n\n") if line]
        if not events or events[-1].get("type") != "speech.audio.done":
            return f"SSE without speech.audio.done: {data[-200:]!r}", 0.0
        return _OK, 0.0
    if not data:
        return "empty body", 0.0
    return _OK, len(data) / 2 / 24_000 if fmt == "pcm" else 0.0


async def wyoming_client(
    port: int, index: int, texts: list[str], voice: str | None, deadline: float, tally: Tally
) -> None:
    """Requests until ``deadline``: one-shot and streaming by turns."""
    turn = index
    while time.monotonic() < deadline:
        streaming = turn % 2 == 1
        kind = "wyoming streaming" if streaming else "wyoming one-shot"
        text = texts[turn % len(texts)]
        try:
            outcome, seconds = await _wyoming_request(port, text, voice, streaming)
        except (OSError, TimeoutError) as err:
            outcome, seconds = f"{type(err).__name__}: {err}", 0.0
        tally.add(kind, outcome, seconds)
        if outcome == _BUSY:
            await asyncio.sleep(BUSY_PAUSE)
        turn += 1


async def http_client(
    http_port: int, index: int, texts: list[str], voice: str | None, deadline: float, tally: Tally
) -> None:
    """Requests on one keep-alive session until ``deadline``, through the formats and
    modes (chunked stream, whole body, server-sent events) by turns."""
    url = f"http://{HOST}:{http_port}/v1/audio/speech"
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    turn = index
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            fmt, mode = _HTTP_MODES[turn % len(_HTTP_MODES)]
            text = texts[turn % len(texts)]
            try:
                outcome, seconds = await _http_request(session, url, text, voice, fmt, mode)
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                outcome, seconds = f"{type(err).__name__}: {err}", 0.0
            tally.add(f"http {mode}", outcome, seconds)
            if outcome == _BUSY:
                await asyncio.sleep(BUSY_PAUSE)
            turn += 1


async def run_clients(
    port: int,
    http_port: int,
    wyoming_clients: int,
    http_clients: int,
    kinds: tuple[str, ...],
    seconds: float,
    voices: tuple[str | None, ...] = (None,),
) -> Tally:
    """Every client at once, each starting requests for ``seconds``, speaking the
    benchmark texts of ``kinds``; client ``i`` of each front door speaks with
    ``voices[i % len(voices)]`` (None: the default voice)."""
    tally = Tally()
    texts = [text.text for text in TEXTS if text.kind in kinds]
    deadline = time.monotonic() + seconds

    def voice(i: int) -> str | None:
        return voices[i % len(voices)]

    await asyncio.gather(
        *(
            wyoming_client(port, i, texts, voice(i), deadline, tally)
            for i in range(wyoming_clients)
        ),
        *(http_client(http_port, i, texts, voice(i), deadline, tally) for i in range(http_clients)),
    )
    return tally

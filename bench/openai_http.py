"""The OpenAI-compatible endpoint (``/v1/audio/speech``), timed per response format.

Over HTTP: time to first byte and total time of each format, run back to back
with raw ``pcm`` so the difference is what encoding adds; and streamed ``pcm`` as a
player hears it, one request or many at once (how ``bench.kokoro`` compares servers).
In-process: the shim's own encoder timed on the same speech, in milliseconds per
second of audio, which a loaded machine's noise cannot hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from openai_shim.encoder import FORMATS as _SHIM_FORMATS
from openai_shim.encoder import PCM_RATE, AudioWriter

from .results import OpenAiFormat, OpenAiSample
from .stats import median
from .sweep import LevelRun
from .wyoming_client import HOST, TIMEOUT, Measurement, Playback

BASELINE = "pcm"
"""Raw samples: the other formats' encoding overhead is measured against it."""

FORMATS = (BASELINE, *(f for f in _SHIM_FORMATS if f != BASELINE))
SPEECH_PATH = "/v1/audio/speech"
_FAILURES = (aiohttp.ClientError, RuntimeError, TimeoutError)
_PIECE = PCM_RATE // 2
"""Samples per piece fed to the encoder (half a second, about a short clause)."""

_ENCODE_REPEATS = 5


def listening(port: int) -> bool:
    """Whether something accepts connections on the loopback port (the shim is running)."""
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


async def _body(
    session: aiohttp.ClientSession, url: str, body: Mapping[str, Any], headers: Mapping[str, str]
) -> AsyncIterator[bytes]:
    """The response body's pieces as they arrive; raises on an HTTP error."""
    async with session.post(url, json=body, headers=headers) as response:
        if response.status != 200:
            detail = (await response.text())[:200]
            raise RuntimeError(f"HTTP {response.status}: {detail}")
        async for piece in response.content.iter_any():
            if piece:
                yield piece


async def timed_speech(
    session: aiohttp.ClientSession,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
) -> tuple[float, float, bytes]:
    """(time to first byte, total time, body) of one request; raises on an HTTP error."""
    started = time.perf_counter()
    first: float | None = None
    data = bytearray()
    async for piece in _body(session, url, body, headers):
        if first is None:
            first = time.perf_counter()
        data += piece
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError("empty response body")
    return first - started, ended - started, bytes(data)


@dataclass
class PlayedSpeech(Measurement):
    """A streamed ``pcm`` response as a player hears it."""

    lead: float | None = None
    """Seconds of audio before its first sound (a sample at ``LOUD`` or above)."""


LOUD = round(32768 * 10 ** (-40 / 20))
"""A sample this loud (-40 dBFS) is sound; Kokoro's silence lies near -80 dBFS."""


def _first_sound(pcm: bytes) -> int | None:
    """Index of the first sample of 16-bit ``pcm`` at ``LOUD`` or above."""
    samples = np.frombuffer(pcm, "<i2", len(pcm) // 2).astype(np.int32)
    loud = np.flatnonzero(np.abs(samples) >= LOUD)
    return int(loud[0]) if loud.size else None


async def played_speech(
    session: aiohttp.ClientSession, url: str, body: Mapping[str, Any], rate: int = PCM_RATE
) -> PlayedSpeech:
    """One request for streamed ``pcm`` (16-bit mono at ``rate`` Hz) as a player hears it:
    time to its first byte, total time, seconds of audio, stall, the silence before its
    first sound; a failure as its error."""
    playback = Playback()
    data = bytearray()
    lead: int | None = None
    started = time.perf_counter()
    try:
        async for piece in _body(session, url, body, {}):
            playback.receive(time.perf_counter(), len(piece) / (2 * rate))
            data += piece
            if lead is None:
                lead = _first_sound(bytes(data))
    except _FAILURES as err:
        return PlayedSpeech(error=f"{type(err).__name__}: {err}")
    ended = time.perf_counter()
    if playback.started is None:
        return PlayedSpeech(total=ended - started, error="empty response body")
    return PlayedSpeech(
        ttfa=playback.started - started,
        total=ended - started,
        audio=len(data) / (2 * rate),
        stall=playback.stall,
        lead=None if lead is None else lead / rate,
    )


async def speech_burst(url: str, bodies: list[dict[str, Any]]) -> LevelRun:
    """All ``bodies`` sent at once, each on a connection of its own, played as they stream."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        played = await asyncio.gather(*(played_speech(session, url, body) for body in bodies))
        wall = time.perf_counter() - started
    return LevelRun(len(bodies), wall, list(played))


def encode_cost(pcm: np.ndarray, fmt: str) -> float | None:
    """Median seconds the shim's encoder needs per second of ``pcm`` (mono int16, PCM_RATE)."""
    if not len(pcm):
        return None
    spec = _SHIM_FORMATS[fmt]
    timings = []
    for _ in range(_ENCODE_REPEATS):
        writer = AudioWriter(spec, PCM_RATE, spec.output_rate(PCM_RATE), streamed=True)
        started = time.perf_counter()
        for i in range(0, len(pcm), _PIECE):
            writer.write(pcm[i : i + _PIECE])
        writer.finish()
        timings.append(time.perf_counter() - started)
        writer.close()
    seconds = median(timings)
    return None if seconds is None else seconds / (len(pcm) / PCM_RATE)


async def measure_openai(
    port: int, voice: str, texts: list[str], rounds: int, api_key: str | None
) -> list[OpenAiFormat]:
    """Each text in each format, ``rounds`` times, the order of formats flipping per round."""
    url = f"http://{HOST}:{port}{SPEECH_PATH}"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    results = {f: OpenAiFormat(f) for f in FORMATS}
    speech = np.zeros(0, np.int16)

    def body(text: str, fmt: str) -> dict[str, str]:
        return {"model": "tts-1", "input": text, "voice": voice, "response_format": fmt}

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        for fmt in FORMATS:  # warm each encoder up once; failures show in the rounds
            with contextlib.suppress(*_FAILURES):
                await timed_speech(session, url, body("Warm up.", fmt), headers)
        for round_ in range(rounds):
            order = FORMATS if round_ % 2 == 0 else FORMATS[::-1]
            for index, text in enumerate(texts):
                for fmt in order:
                    sample = OpenAiSample(round_, index)
                    try:
                        sample.ttfb, sample.total, data = await timed_speech(
                            session, url, body(text, fmt), headers
                        )
                    except _FAILURES as err:
                        sample.error = f"{type(err).__name__}: {err}"
                    else:
                        if fmt == BASELINE:
                            speech = np.frombuffer(data, "<i2")
                    results[fmt].samples.append(sample)
    for fmt in FORMATS:
        results[fmt].encode_per_second = encode_cost(speech, fmt)
    return list(results.values())

"""Engine faults: one engine raising, hanging, running out of memory or failing to load
costs only its own request, and every other engine (and the faulty one afterwards) serves.

Both front doors run in-process on one real pool: healthy Piper, a Piper that
misbehaves on cue words, and a Piper whose load fails. Clients are the wyoming
library's and aiohttp; audio is decoded and checked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import torch
from aiohttp import web
from wyoming.client import AsyncTcpClient

from openai_shim import ShimSettings, create_app
from wyoming_polytts.config import LimitsSettings, parse_config
from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.library.library import VoiceLibrary
from wyoming_polytts.net.clients import Clients
from wyoming_polytts.pool.pool import EnginePool, LifecycleSettings
from wyoming_polytts.speech.catalog import Catalog
from wyoming_polytts.wyoming.handler import HandlerSettings
from wyoming_polytts.wyoming.server import WyomingServer

from .figures import record
from .helpers import (
    TIMEOUT,
    Speech,
    assert_speech_like,
    describe,
    free_port,
    post_speech,
    synthesize,
)
from .test_voice_library import LIMITS

JOB_TIMEOUT = 1.0
"""pool.job_timeout of this server, in seconds."""

TEXT = "The front door is locked."
HEALTHY = f"piper:{DEFAULT_VOICE}"
FAULTY = f"faulty:{DEFAULT_VOICE}"
BROKEN = f"broken:{DEFAULT_VOICE}"


class _FaultyPiper(PiperEngine):
    """Piper that misbehaves on cue: "explodes" raises after half the sentence's audio,
    "overflows" raises torch's CUDA out-of-memory error, "stalls" blocks until released."""

    release = threading.Event()
    hanging = threading.Event()

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        if "overflows" in request.text:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if "stalls" in request.text:
            self.hanging.set()
            self.release.wait(TIMEOUT)
        pieces = list(super().synthesize(request))
        if "explodes" in request.text:
            audio = np.concatenate(pieces)
            yield audio[: len(audio) // 2]
            raise RuntimeError("the vocoder exploded")
        yield from pieces


class _UnloadablePiper(PiperEngine):
    """Piper whose weights are missing."""

    def load(self) -> None:
        raise FileNotFoundError("model.onnx is missing")


@dataclass
class Servers:
    """Both front doors on one pool, in this process."""

    pool: EnginePool
    wyoming_port: int
    http: str
    """Base URL of the HTTP API."""


@pytest.fixture(scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Servers]:
    tmp = Path(tmp_path_factory.mktemp("faults"))
    context = EngineContext(cache_dir=tmp, voices_dir=tmp, threads=2, base_dir=tmp)
    engines = {
        "piper": PiperEngine(PiperOptions(), context),
        # One worker, so a hung sentence leaves the engine unresponsive.
        "faulty": _FaultyPiper(PiperOptions(concurrency=1), context),
        "broken": _UnloadablePiper(PiperOptions(), context),
    }
    lifecycle = LifecycleSettings(retry_after=3600)
    pool = EnginePool(engines, queue_size=4, lifecycle=lifecycle, job_timeout=JOB_TIMEOUT)
    await pool.start(pool.preloaded)
    catalog = Catalog(pool, DEFAULT_VOICE)
    wyoming_port = free_port()
    settings = HandlerSettings(
        max_chars=4096, max_sentence_chars=300, samples_per_chunk=1024, lookahead=2
    )
    wyoming = WyomingServer(catalog, pool, settings, Clients(LimitsSettings()))
    await wyoming.start(f"tcp://127.0.0.1:{wyoming_port}")
    shim = ShimSettings.from_config(parse_config({}, tmp))
    library = VoiceLibrary(tmp / "voices", LIMITS)
    runner = web.AppRunner(create_app(pool, catalog, library, shim))
    await runner.setup()
    http_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    yield Servers(pool, wyoming_port, f"http://127.0.0.1:{http_port}")
    _FaultyPiper.release.set()
    await runner.cleanup()
    await wyoming.close()
    await pool.close()


async def _say(servers: Servers, text: str, voice: str) -> Speech:
    async with AsyncTcpClient("127.0.0.1", servers.wyoming_port) as client:
        return await synthesize(client, text, voice)


async def _speech_ok(servers: Servers, voice: str) -> None:
    speech = await _say(servers, TEXT, voice)
    assert not speech.errors, speech.errors
    assert_speech_like(speech.samples, speech.rate, TEXT)


async def _post(servers: Servers, text: str, voice: str) -> tuple[int, Any]:
    status, body = await post_speech(f"{servers.http}/v1", text, voice, "pcm")
    return status, np.frombuffer(body, "<i2") if status == 200 else body


async def _health(servers: Servers) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{servers.http}/health") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


async def test_an_engine_raising_mid_stream_fails_only_that_request(servers: Servers) -> None:
    speech = await _say(servers, "The lights are off. Then it explodes.", FAULTY)
    assert len(speech.samples) > speech.rate // 2, "the audio before the failure went out"
    assert [e.code for e in speech.errors] == ["synthesis-failed"]
    # The engine's own message stays in the log (it may name the server's paths).
    assert speech.errors[0].text == "engine 'faulty' failed (RuntimeError); see the server log"
    await _speech_ok(servers, FAULTY)
    status = servers.pool.status("faulty")
    assert (status.running, status.waiting, status.requests) == (0, 0, 0)


async def test_gpu_out_of_memory_fails_the_request_and_the_engine_stays_usable(
    servers: Servers,
) -> None:
    status, body = await _post(servers, "The memory overflows.", FAULTY)
    assert status == 503, body
    assert body["error"]["code"] == "out_of_memory"
    assert "ran out of memory" in body["error"]["message"]
    speech = await _say(servers, "It overflows again.", FAULTY)
    assert [e.code for e in speech.errors] == ["out-of-memory"]
    status, audio = await _post(servers, TEXT, FAULTY)
    assert status == 200
    assert_speech_like(audio, 24_000, TEXT)
    assert (await _health(servers))["engines"]["faulty"]["state"] == "loaded"


async def test_a_hung_engine_times_out_and_serves_again_when_it_returns(
    servers: Servers,
) -> None:
    _FaultyPiper.release.clear()
    _FaultyPiper.hanging.clear()
    started = time.monotonic()
    hung = asyncio.create_task(_say(servers, "Now it stalls.", FAULTY))
    assert await asyncio.to_thread(_FaultyPiper.hanging.wait, TIMEOUT)
    queued = asyncio.create_task(_say(servers, TEXT, FAULTY))  # waits behind the hung one
    await _speech_ok(servers, HEALTHY)  # another engine is unaffected

    speech = await asyncio.wait_for(hung, TIMEOUT)
    waited = time.monotonic() - started
    assert [e.code for e in speech.errors] == ["synthesis-timeout"]
    assert "pool.job_timeout" in (speech.errors[0].text or "")
    assert JOB_TIMEOUT <= waited < JOB_TIMEOUT + 10
    record("faults", "hung_engine_request_failed_after_s", round(waited, 2))
    behind = await asyncio.wait_for(queued, TIMEOUT)
    assert [e.code for e in behind.errors] == ["engine-unavailable"], "did not fail at once"

    # The worker stays busy until the engine call returns; requests fail at once meanwhile.
    health = await _health(servers)
    faulty = health["engines"]["faulty"]
    assert health["status"] == "degraded"
    assert (faulty["stuck"], faulty["running"], faulty["requests"]) == (1, 1, 0)
    refused = await _say(servers, TEXT, FAULTY)
    assert [e.code for e in refused.errors] == ["engine-unavailable"]
    assert "not responding" in (refused.errors[0].text or "")
    await _speech_ok(servers, HEALTHY)

    _FaultyPiper.release.set()
    deadline = time.monotonic() + TIMEOUT
    while servers.pool.status("faulty").running:
        assert time.monotonic() < deadline, "the engine call never returned"
        await asyncio.sleep(0.02)
    assert servers.pool.status("faulty").stuck == 0
    await _speech_ok(servers, FAULTY)
    assert (await _health(servers))["engines"]["faulty"]["stuck"] == 0


async def test_an_engine_that_fails_to_load_leaves_the_others_serving(
    servers: Servers,
) -> None:
    info = await describe(servers.wyoming_port)
    voices = {voice.name: voice for voice in info.tts[0].voices}
    assert not voices[BROKEN].installed
    assert "model.onnx is missing" in (voices[BROKEN].description or "")
    assert voices[HEALTHY].installed and voices[FAULTY].installed

    health = await _health(servers)
    assert health["engines"]["broken"]["state"] == "failed"
    assert health["engines"]["broken"]["error"] == "model.onnx is missing"

    speech = await _say(servers, TEXT, BROKEN)
    assert [e.code for e in speech.errors] == ["engine-unavailable"]
    assert "model.onnx is missing" in (speech.errors[0].text or "")
    status, body = await _post(servers, TEXT, BROKEN)
    assert status == 503 and "model.onnx is missing" in body["error"]["message"]
    await _speech_ok(servers, HEALTHY)
    await _speech_ok(servers, FAULTY)

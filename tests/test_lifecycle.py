"""The engine lifecycle: lazy loading, idle unload, the memory budget, retries after failure.

Real servers (tests/helpers.ServerProcess) with real CPU engines: Piper, Kokoro
and the tiny XTTS. Nothing waits a fixed time: short timeouts in the config,
and ``/health`` polled until the expected state, within a bound.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from wyoming.client import AsyncTcpClient

from wyoming_polytts.config import parse_config
from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import EngineContext
from wyoming_polytts.engines.kokoro.engine import KokoroEngine, KokoroOptions
from wyoming_polytts.engines.kokoro.weights import embedded_model
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.errors import ConfigError, EngineUnavailableError
from wyoming_polytts.pool.memory import resolve_budget
from wyoming_polytts.pool.metrics import FrontDoor
from wyoming_polytts.pool.pool import EnginePool, EngineState, EngineStatus, LifecycleSettings
from wyoming_polytts.speech.catalog import Catalog
from wyoming_polytts.speech.synthesis import SpeechOptions, iterate, speak

from .helpers import (
    TIMEOUT,
    ServerProcess,
    Speech,
    assert_speech_like,
    describe,
    get_json,
    post_speech,
    synthesize,
    synthesize_stream,
)
from .xtts_fixture import engine_config

PIPER = DEFAULT_VOICE
TEXT = "The front door is locked and the lights are off."
KOKORO = "jf_alpha"
SHORT = "Good night."
XTTS = "Ana Florence"


def _server(tmp: Path, config: dict[str, Any]) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp, config).start()
    yield process
    assert process.stop() == 0, process.log()


async def _status(server: ServerProcess, engine: str) -> dict[str, Any]:
    engines: dict[str, Any] = (await get_json(server, "/health"))["engines"]
    return engines[engine]


async def _wait_for(server: ServerProcess, engine: str, **expected: Any) -> dict[str, Any]:
    """Poll ``/health`` until ``engine`` shows ``expected`` (e.g. state="unloaded")."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        status = await _status(server, engine)
        if expected.items() <= status.items():
            return status
        assert time.monotonic() < deadline, f"{engine} never reached {expected}: {status}"
        await asyncio.sleep(0.02)


async def _say(server: ServerProcess, text: str, voice: str) -> Speech:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        return await synthesize(client, text, voice)


async def _post_speech(server: ServerProcess, text: str, voice: str) -> tuple[int, Any]:
    """POST /v1/audio/speech as WAV: the status and the decoded audio (or the error body)."""
    status, body = await post_speech(server.base_url, text, voice, "wav")
    if status != 200:
        return status, body
    return status, soundfile.read(io.BytesIO(body), dtype="int16")


def _assert_audible(samples: np.ndarray) -> None:
    """The tiny XTTS speaks quiet noise: some audio, not silence."""
    assert samples.size > 0
    assert np.abs(samples).max() > 0, "silence"


# --- idle unload -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Piper unloaded after one idle second."""
    config = {"engines": {"piper": {"idle_unload_after": 1}}}
    yield from _server(tmp_path_factory.mktemp("idle"), config)


async def test_idle_engine_unloads_and_reloads_on_the_next_request(idle: ServerProcess) -> None:
    await _wait_for(idle, "piper", state="unloaded", requests=0)
    assert "Unloaded engine piper (idle for 1 s)" in idle.log()
    assert (await describe(idle.port)).tts[0].voices[0].installed

    speech = await _say(idle, TEXT, PIPER)
    assert not speech.errors
    assert_speech_like(speech.samples, speech.rate, TEXT)
    assert idle.log().count("Loading engine piper") >= 2
    await _wait_for(idle, "piper", state="unloaded")


async def test_engine_in_use_is_not_unloaded(idle: ServerProcess) -> None:
    """A stream whose sentences come further apart than idle_unload_after keeps its engine."""
    sentences = ["The lights are off. ", "The door is locked. ", "The garage is closed. "]
    states: list[str] = []
    async with AsyncTcpClient("127.0.0.1", idle.port) as client:
        stream = asyncio.create_task(synthesize_stream(client, sentences, PIPER, delay=1.5))
        await _wait_for(idle, "piper", state="loaded", requests=1)
        unloads = idle.log().count("Unloaded engine piper")
        while not stream.done():
            states.append((await _status(idle, "piper"))["state"])
            await asyncio.sleep(0.05)
        speech, _ = await stream
    assert set(states) == {"loaded"}, states
    assert idle.log().count("Unloaded engine piper") == unloads
    assert not speech.errors
    assert_speech_like(speech.samples, speech.rate, "".join(sentences))
    await _wait_for(idle, "piper", state="unloaded")


# --- the memory budget -----------------------------------------------------------------


@pytest.fixture(scope="module")
def budget(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Room for Piper or Kokoro (each counted as at least 200 MiB), not for both."""
    config = {
        "pool": {"gpu_memory_budget": "300MiB"},
        "engines": {
            "piper": {"memory_estimate": "200MiB"},
            "kokoro": {"preload": False, "memory_estimate": "200MiB"},
        },
    }
    yield from _server(tmp_path_factory.mktemp("budget"), config)


async def test_budget_evicts_the_idle_engine_and_loads_the_other(budget: ServerProcess) -> None:
    health = await get_json(budget, "/health")
    assert health["memory_budget"] == 300 * 2**20
    assert health["engines"]["piper"]["state"] == "loaded"
    assert health["engines"]["kokoro"]["state"] == "unloaded"
    info = await describe(budget.port)
    assert next(v for v in info.tts[0].voices if v.name == KOKORO).installed

    speech = await _say(budget, SHORT, KOKORO)
    assert not speech.errors
    assert_speech_like(speech.samples, speech.rate, SHORT)
    assert (await _status(budget, "piper"))["state"] == "unloaded"
    assert (await _status(budget, "kokoro"))["state"] == "loaded"
    assert "Unloaded engine piper (to make room for kokoro)" in budget.log()


async def test_engine_in_use_is_not_evicted(budget: ServerProcess) -> None:
    """While Kokoro serves a stream, Piper cannot get room: a clear error on both doors."""
    async with AsyncTcpClient("127.0.0.1", budget.port) as client:
        sentences = ["Good night. ", "Sleep well. "]
        stream = asyncio.create_task(synthesize_stream(client, sentences, KOKORO, delay=1.0))
        await _wait_for(budget, "kokoro", state="loaded", requests=1)
        refused = await _say(budget, SHORT, PIPER)
        status, body = await _post_speech(budget, SHORT, PIPER)
        speech, _ = await stream
    assert not speech.errors and speech.samples.size > 0
    assert [error.code for error in refused.errors] == ["insufficient-memory"]
    message = refused.errors[0].text
    assert "not enough memory for engine 'piper': it needs about 200 MiB" in message
    assert "300 MiB memory budget" in message
    assert "kokoro" in message and "(in use)" in message
    assert status == 503
    assert body["error"]["code"] == "insufficient_memory"
    # Once Kokoro is idle, Piper gets its room.
    speech = await _say(budget, SHORT, PIPER)
    assert not speech.errors
    assert (await _status(budget, "kokoro"))["state"] == "unloaded"


@pytest.fixture(scope="module")
def small_budget(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A budget smaller than Piper alone; Piper has no estimate, so its load is measured."""
    config = {"pool": {"gpu_memory_budget": "50MiB"}}
    yield from _server(tmp_path_factory.mktemp("small-budget"), config)


async def test_budget_too_small_for_one_engine_gives_a_clear_error(
    small_budget: ServerProcess,
) -> None:
    status = await _status(small_budget, "piper")
    assert status["state"] == "unloaded"
    assert status["memory"] > 50 * 2**20, "the preload was measured"
    assert "more than the whole memory budget of 50 MiB" in status["error"]

    speech = await _say(small_budget, TEXT, PIPER)
    assert [error.code for error in speech.errors] == ["insufficient-memory"]
    assert "engine 'piper' needs about" in speech.errors[0].text
    assert "pool.gpu_memory_budget" in speech.errors[0].text
    code, body = await _post_speech(small_budget, TEXT, PIPER)
    assert code == 503
    assert body["error"]["code"] == "insufficient_memory"
    # Refused before loading again: its size is known now.
    assert small_budget.log().count("Loading engine piper") == 1
    assert (await describe(small_budget.port)).tts[0].voices[0].installed


# --- waiting for a load ----------------------------------------------------------------


@pytest.fixture(scope="module")
def lazy(tiny_xtts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Piper, and the tiny XTTS loaded on its first request."""
    config = {"engines": {"piper": {}, "xtts": {**engine_config(tiny_xtts), "preload": False}}}
    yield from _server(tmp_path_factory.mktemp("lazy"), config)


async def test_requests_wait_for_a_loading_engine(lazy: ServerProcess) -> None:
    assert (await _status(lazy, "xtts"))["state"] == "unloaded"
    first = asyncio.create_task(_say(lazy, "Hello there.", XTTS))
    await _wait_for(lazy, "xtts", state="loading")
    voices = {v.name: v for v in (await describe(lazy.port)).tts[0].voices}
    assert voices[XTTS].installed, "voices stay usable while their engine loads"
    second = asyncio.create_task(_post_speech(lazy, "Good morning.", XTTS))
    await _wait_for(lazy, "xtts", state="loading", requests=2)

    speech = await first
    status, (samples, rate) = await second
    assert not speech.errors
    assert speech.rate == 24000
    _assert_audible(speech.samples)
    assert status == 200 and rate == 24000
    _assert_audible(samples)
    assert lazy.log().count("Loading engine xtts") == 1


# --- in-process: the wait bound, retries, configuration ----------------------------------


def _context(tmp: Path) -> EngineContext:
    return EngineContext(cache_dir=tmp / "cache", voices_dir=tmp, threads=2, base_dir=tmp)


async def _until(pool: EnginePool, engine: str, state: EngineState) -> EngineStatus:
    deadline = time.monotonic() + TIMEOUT
    while (status := pool.status(engine)).state is not state:
        assert time.monotonic() < deadline, f"{engine} never reached {state}: {status}"
        await asyncio.sleep(0.02)
    return status


async def test_a_request_waits_at_most_load_wait(tmp_path: Path) -> None:
    engine = PiperEngine(PiperOptions(preload=False), _context(tmp_path))
    pool = EnginePool({"piper": engine}, 4, LifecycleSettings(load_wait=0.01))
    voice = Catalog(pool, DEFAULT_VOICE).resolve(None)

    async def say() -> np.ndarray:
        pcm = speak(pool, voice, iterate([TEXT]), SpeechOptions(), 2, front_door=FrontDoor.WYOMING)
        async with aclosing(pcm):
            return np.concatenate([piece async for piece in pcm])

    try:
        with pytest.raises(EngineUnavailableError, match="engine 'piper' is still loading"):
            await say()
        await _until(pool, "piper", EngineState.LOADED)  # the load went on
        assert_speech_like(await say(), voice.info.sample_rate, TEXT)
    finally:
        await pool.close()
    assert pool.status("piper").state is EngineState.UNLOADED


async def test_a_failed_engine_is_loaded_again_after_the_back_off(tmp_path: Path) -> None:
    model = tmp_path / "kokoro.onnx"
    engine = KokoroEngine(KokoroOptions(model=str(model)), _context(tmp_path))
    pool = EnginePool({"kokoro": engine}, 4, LifecycleSettings(retry_after=1.0))
    failed = {"engine": "kokoro", "outcome": "failed"}
    try:
        await pool.start(pool.preloaded)
        status = pool.status("kokoro")
        assert status.state is EngineState.FAILED
        assert status.error is not None and "kokoro.onnx" in status.error
        with pytest.raises(EngineUnavailableError, match="failed to load"):
            async with pool.session("kokoro"):
                pass
        assert pool.metrics.registry.get_sample_value("polytts_engine_loads_total", failed) == 1

        model.symlink_to(embedded_model(tmp_path / "cache"))
        await _until(pool, "kokoro", EngineState.UNLOADED)
        async with pool.session("kokoro"):
            assert pool.status("kokoro").state is EngineState.LOADED
    finally:
        await pool.close()


def test_lifecycle_settings_are_checked(tmp_path: Path) -> None:
    assert resolve_budget("6GiB", "key") == 6 * 2**30
    assert resolve_budget(1_000_000, "key") == 1_000_000
    assert parse_config({"pool": {"gpu_memory_budget": "80%"}}, tmp_path)
    for bad in ("six gigs", "0MiB", "120%", 0):
        with pytest.raises(ConfigError, match=r"pool\.gpu_memory_budget"):
            parse_config({"pool": {"gpu_memory_budget": bad}}, tmp_path)
    with pytest.raises(ConfigError, match=r"pool\.load_wait"):
        parse_config({"pool": {"load_wait": 0}}, tmp_path)
    for options, key in (
        (PiperOptions(idle_unload_after=0), "engines.piper.idle_unload_after"),
        (PiperOptions(memory_estimate="lots"), "engines.piper.memory_estimate"),
    ):
        with pytest.raises(ConfigError, match=key):
            EnginePool({"piper": PiperEngine(options, _context(tmp_path))}, 4)
    engine = PiperEngine(PiperOptions(), _context(tmp_path))
    assert EnginePool({"piper": engine}, 4).preloaded == ["piper"]


# --- a real GPU ------------------------------------------------------------------------


@pytest.mark.gpu
async def test_cuda_memory_is_measured_and_freed(tiny_xtts: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from wyoming_polytts.engines.xtts.engine import XttsEngine
    from wyoming_polytts.engines.xtts.options import XttsOptions

    options = XttsOptions(**{**engine_config(tiny_xtts), "device": "cuda"})
    pool = EnginePool({"xtts": XttsEngine(options, _context(tmp_path))}, 4)
    torch.cuda.init()
    before = torch.cuda.memory_allocated()
    try:
        await pool.start(["xtts"])
        status = pool.status("xtts")
        assert status.state is EngineState.LOADED
        held = torch.cuda.memory_allocated() - before
        assert status.memory == held > 50 * 2**20, "the tiny model's weights are on the GPU"
    finally:
        await pool.close()
    assert torch.cuda.memory_allocated() - before < 2**20

"""An engine's lifecycle state: every legal move, every illegal one refused, and the
races the pool must survive (an unload asked for during a load, a load failing while
requests wait for it, running out of memory in the middle of a sentence).

The races run the real pool on the real Piper engine, with its load held on a gate
(or made to fail) and its synthesis made to run out of memory on one sentence.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import numpy as np
import pytest

from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.errors import EngineOutOfMemoryError, EngineUnavailableError
from wyoming_polytts.pool.metrics import FrontDoor
from wyoming_polytts.pool.pool import EnginePool, LifecycleSettings
from wyoming_polytts.pool.slot import EngineSlot, EngineState, IllegalTransition
from wyoming_polytts.speech.catalog import Catalog
from wyoming_polytts.speech.synthesis import SpeechOptions, iterate, speak

from .helpers import TIMEOUT, assert_speech_like

S = EngineState
LEGAL = {
    "begin_load": ({S.UNLOADED}, S.LOADING),
    "loaded": ({S.LOADING}, S.LOADED),
    "failed": ({S.LOADING}, S.FAILED),
    "refused": ({S.LOADING}, S.UNLOADED),
    "cancelled": ({S.LOADING}, S.UNLOADED),
    "allow_retry": ({S.FAILED}, S.UNLOADED),
    "begin_unload": ({S.LOADED}, S.UNLOADING),
    "unloaded": ({S.UNLOADING}, S.UNLOADED),
}
PATH_TO = {
    S.UNLOADED: [],
    S.LOADING: ["begin_load"],
    S.LOADED: ["begin_load", "loaded"],
    S.FAILED: ["begin_load", "failed"],
    S.UNLOADING: ["begin_load", "loaded", "begin_unload"],
}
"""Moves that bring a new slot into each state."""

ARGUMENTS = {"failed": ("it broke",), "refused": ("no room",)}


def _slot_in(state: EngineState) -> EngineSlot:
    slot = EngineSlot("test")
    for move in PATH_TO[state]:
        getattr(slot, move)(*ARGUMENTS.get(move, ()))
    assert slot.state is state
    return slot


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("move", list(LEGAL))
def test_every_move_from_every_state(move: str, state: EngineState) -> None:
    slot = _slot_in(state)
    sources, target = LEGAL[move]
    if state in sources:
        getattr(slot, move)(*ARGUMENTS.get(move, ()))
        assert slot.state is target
    else:
        with pytest.raises(IllegalTransition, match=f"cannot {move} while {state}"):
            getattr(slot, move)(*ARGUMENTS.get(move, ()))
        assert slot.state is state, "an illegal move changed the state"


def test_the_error_stays_until_a_load_succeeds() -> None:
    slot = _slot_in(S.FAILED)
    assert slot.error == "it broke"
    slot.allow_retry()
    slot.begin_load()
    assert slot.error == "it broke", "a load in progress still shows why the last one failed"
    slot.loaded()
    assert slot.error is None
    slot.begin_unload()
    slot.unloaded("over the memory budget")
    assert (slot.state, slot.error) == (S.UNLOADED, "over the memory budget")
    slot.note("not preloaded")
    assert slot.error == "not preloaded"
    slot.begin_load()
    with pytest.raises(IllegalTransition):
        slot.note("while loading")


def test_watchers_hear_every_move_with_its_error_set() -> None:
    slot = EngineSlot("test")
    heard: list[tuple[EngineState, str | None]] = []
    slot.watch(lambda: heard.append((slot.state, slot.error)))
    slot.begin_load()
    slot.failed("it broke")
    slot.allow_retry()
    slot.begin_load()
    slot.loaded()
    slot.begin_unload()
    slot.unloaded("over the memory budget")
    slot.note("not preloaded")  # not a move
    with pytest.raises(IllegalTransition):
        slot.loaded()
    assert heard == [
        (S.LOADING, None),
        (S.FAILED, "it broke"),
        (S.UNLOADED, "it broke"),
        (S.LOADING, "it broke"),
        (S.LOADED, None),
        (S.UNLOADING, None),
        (S.UNLOADED, "over the memory budget"),
    ]


# --- races on the real pool ------------------------------------------------------------


class _GatedPiper(PiperEngine):
    """Piper whose load waits for ``gate`` and fails while ``fail`` is set, and whose
    synthesis runs out of memory after the first piece of a sentence naming ``OOM``."""

    def __init__(self, options: PiperOptions, context: EngineContext) -> None:
        super().__init__(options, context)
        self.gate = threading.Event()
        self.fail = threading.Event()
        self.loads = 0

    def load(self) -> None:
        self.loads += 1
        assert self.gate.wait(TIMEOUT), "the test never opened the gate"
        if self.fail.is_set():
            raise RuntimeError("the weights are corrupt")
        super().load()

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        for i, piece in enumerate(super().synthesize(request)):
            if i == 1 and "OOM" in request.text:
                raise MemoryError("out of memory in the middle of a sentence")
            yield piece


@pytest.fixture
def gated(tmp_path: Path) -> _GatedPiper:
    context = EngineContext(cache_dir=tmp_path, voices_dir=tmp_path, threads=2, base_dir=tmp_path)
    return _GatedPiper(PiperOptions(preload=False, idle_unload_after=0.2), context)


async def _states_until(pool: EnginePool, state: EngineState) -> list[EngineState]:
    """The states ``piper`` goes through (each once) until it reaches ``state``."""
    seen: list[EngineState] = []
    async with asyncio.timeout(TIMEOUT):
        while not seen or seen[-1] is not state:
            now = pool.status("piper").state
            if not seen or seen[-1] is not now:
                seen.append(now)
            await asyncio.sleep(0.005)
    return seen


async def test_an_idle_unload_never_interrupts_a_load(gated: _GatedPiper) -> None:
    pool = EnginePool({"piper": gated}, 4, LifecycleSettings())
    try:
        await pool.start([])  # the idle watcher ticks every 50 ms meanwhile
        waiting = asyncio.create_task(_hold_a_session(pool))
        await _until_state(pool, S.LOADING)
        await asyncio.sleep(0.5)  # idle_unload_after passes twice while it loads
        assert pool.status("piper").state is S.LOADING
        gated.gate.set()
        await waiting
        states = await _states_until(pool, S.UNLOADED)  # idle again: now it may go
    finally:
        await pool.close()
    assert states[0] in (S.LOADED, S.UNLOADING, S.UNLOADED)
    assert gated.loads == 1


async def _hold_a_session(pool: EnginePool) -> None:
    async with pool.session("piper"):
        assert pool.status("piper").state is S.LOADED


async def _until_state(pool: EnginePool, state: EngineState) -> None:
    async with asyncio.timeout(TIMEOUT):
        while pool.status("piper").state is not state:
            await asyncio.sleep(0.005)


async def test_a_load_failing_while_requests_wait(gated: _GatedPiper) -> None:
    pool = EnginePool({"piper": gated}, 4, LifecycleSettings(retry_after=0.5))
    try:
        await pool.start([])
        waiting = [asyncio.create_task(_hold_a_session(pool)) for _ in range(3)]
        await _until_state(pool, S.LOADING)
        assert pool.status("piper").requests == 3
        gated.fail.set()
        gated.gate.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        status = pool.status("piper")
        assert status.state is S.FAILED
        assert status.error == "the weights are corrupt"
        assert status.requests == 0, "failed requests still counted"
        for result in results:
            assert isinstance(result, EngineUnavailableError)
            assert "the weights are corrupt" in str(result)
        assert gated.loads == 1, "each waiting request loaded again"
        gated.fail.clear()
        await _until_state(pool, S.UNLOADED)  # retry_after passed
        await _hold_a_session(pool)
    finally:
        await pool.close()
    assert gated.loads == 2


async def test_out_of_memory_mid_sentence_fails_only_that_request(gated: _GatedPiper) -> None:
    gated.gate.set()
    pool = EnginePool({"piper": gated}, 4, LifecycleSettings())
    voice = Catalog(pool, DEFAULT_VOICE).resolve(None)
    text = "OOM strikes in the middle of this rather long sentence about the lights."

    async def say(words: str) -> np.ndarray:
        pieces = speak(
            pool, voice, iterate([words]), SpeechOptions(), 2, front_door=FrontDoor.WYOMING
        )
        async with aclosing(pieces) as pcm:
            return np.concatenate([piece async for piece in pcm])

    try:
        await pool.start(["piper"])
        with pytest.raises(EngineOutOfMemoryError, match="ran out of memory"):
            await say(text)
        status = pool.status("piper")
        assert (status.state, status.running, status.waiting, status.requests) == (
            S.LOADED,
            0,
            0,
            0,
        )
        audio = await say("The door is locked.")
    finally:
        await pool.close()
    assert_speech_like(audio, voice.info.sample_rate, "The door is locked.")

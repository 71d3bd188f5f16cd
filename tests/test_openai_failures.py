"""An engine failing mid-request: the client must see the failure, never cut audio.

The app runs in-process on the real pool with the real Piper engine, which is
made to fail on sentences containing "boom" (the only way to fail it on cue).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from openai_shim import ShimSettings, create_app
from wyoming_polytts.config import parse_config
from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.library.library import VoiceLibrary
from wyoming_polytts.pool.pool import EnginePool
from wyoming_polytts.speech.catalog import Catalog

from .helpers import free_port
from .test_voice_library import LIMITS


class _FailingPiper(PiperEngine):
    """Piper that raises on any sentence containing "boom"."""

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        if "boom" in request.text:
            raise RuntimeError("boom went the engine")
        yield from super().synthesize(request)


@pytest.fixture(scope="module")
async def url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    tmp = Path(tmp_path_factory.mktemp("failures"))
    context = EngineContext(cache_dir=tmp, voices_dir=tmp, threads=2, base_dir=tmp)
    pool = EnginePool({"piper": _FailingPiper(PiperOptions(), context)}, queue_size=4)
    settings = ShimSettings.from_config(parse_config({}, tmp))
    library = VoiceLibrary(tmp / "voices", LIMITS)
    runner = web.AppRunner(create_app(pool, Catalog(pool, DEFAULT_VOICE), library, settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1/audio/speech"
    await runner.cleanup()
    await pool.close()


async def test_failure_before_the_first_audio_gets_a_status(url: str) -> None:
    body = {"input": "A boom."}
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as r:
        assert r.status == 500
        error = (await r.json())["error"]
    assert error["code"] == "synthesis_failed"
    assert error["message"] == "engine 'piper' failed (RuntimeError); see the server log"


async def test_failure_mid_stream_truncates_the_transfer(url: str) -> None:
    text = "The lights are off. Then a boom. Good night."
    async with aiohttp.ClientSession() as session, session.post(url, json={"input": text}) as r:
        assert r.status == 200
        assert await r.content.readany(), "the first sentence's audio did not arrive"
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_failure_mid_events_ends_with_an_error_event(url: str) -> None:
    body = {"input": "The lights are off. Then a boom.", "stream_format": "sse"}
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as r:
        assert r.status == 200
        lines = (await r.text()).split("\n\n")
    events = [json.loads(line.removeprefix("data: ")) for line in lines if line]
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "synthesis_failed"

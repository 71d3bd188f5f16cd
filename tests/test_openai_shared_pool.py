"""Both front doors on one pool, and API keys, against one server with a key configured.

Piper loads no voice at start here (``voices: []``), so the first requests load it:
a Wyoming and an OpenAI request arriving together must share one loaded model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest
from wyoming.client import AsyncTcpClient

from .helpers import TIMEOUT, ServerProcess, assert_speech_like, synthesize
from .test_openai import ANSWER, LONG, VOICE_RATE, decode

KEY = "sk-polytts-test"
LOADED = "Loaded Piper voice en_US-joe-medium"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = {
        "engines": {"piper": {"voices": [], "concurrency": 2}},
        "pool": {"queue_size": 1},
        "openai": {"api_keys": ["other-key", KEY]},
    }
    process = ServerProcess(Path(tmp_path_factory.mktemp("keyed")), config).start()
    yield process
    assert process.stop() == 0, process.log()


async def test_wyoming_and_openai_at_once_load_the_model_once(
    keyed: ServerProcess, transcriber
) -> None:
    assert LOADED not in keyed.log(), "the voice was loaded before the two requests"
    client = openai.AsyncOpenAI(base_url=keyed.base_url, api_key=KEY, max_retries=0)

    async def over_wyoming():
        async with AsyncTcpClient("127.0.0.1", keyed.port) as wyoming:
            return await asyncio.wait_for(synthesize(wyoming, ANSWER), TIMEOUT)

    async def over_http() -> bytes:
        speech = await client.audio.speech.create(
            model="piper", voice="en_US-joe-medium", input=ANSWER, response_format="flac"
        )
        return speech.content

    wyoming_speech, flac = await asyncio.gather(over_wyoming(), over_http())
    assert not wyoming_speech.errors
    assert wyoming_speech.rate == VOICE_RATE
    assert_speech_like(wyoming_speech.samples, wyoming_speech.rate, ANSWER)
    samples, rate = decode(flac, "flac")
    assert rate == VOICE_RATE
    assert_speech_like(samples, rate, ANSWER)
    transcriber.assert_says(samples, rate, ANSWER)
    assert keyed.log().count(LOADED) == 1


def test_wrong_key_is_refused(keyed: ServerProcess) -> None:
    client = openai.OpenAI(base_url=keyed.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as wrong:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert wrong.value.code == "invalid_api_key"
    assert wrong.value.response.json()["error"]["type"] == "invalid_request_error"


async def test_missing_key_is_refused_and_listings_stay_open(keyed: ServerProcess) -> None:
    base = f"http://127.0.0.1:{keyed.http_port}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/audio/speech", json={"input": "Hello."}) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_api_key"
        async with session.get(f"{base}/v1/audio/voices") as response:
            assert response.status == 200


async def test_full_queue_answers_503_and_recovers(keyed: ServerProcess) -> None:
    """Piper runs 2 and queues 1: of 5 long requests at once, 2 are refused at once."""
    url = f"http://127.0.0.1:{keyed.http_port}/v1/audio/speech"
    headers = {"Authorization": f"Bearer {KEY}"}

    async def one(session: aiohttp.ClientSession) -> tuple[int, dict | None]:
        async with session.post(url, json={"input": LONG, "response_format": "pcm"}) as response:
            if response.status == 200:
                assert await response.content.readany()
                return 200, None  # and leave, which cancels the rest
            return response.status, await response.json()

    async with aiohttp.ClientSession(headers=headers) as session:
        results = await asyncio.gather(*(one(session) for _ in range(5)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 503, 503]
    busy = next(body for status, body in results if status == 503)
    assert busy is not None
    assert busy["error"]["code"] == "server_busy"
    assert busy["error"]["type"] == "server_error"
    client = openai.AsyncOpenAI(base_url=keyed.base_url, api_key=KEY, max_retries=3)
    speech = await client.audio.speech.create(model="tts-1", voice="alloy", input=ANSWER)
    samples, rate = decode(speech.content, "mp3")
    assert_speech_like(samples, rate, ANSWER)

"""Cloned voices end to end: registered over HTTP, spoken by XTTS through both front doors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest
from wyoming.client import AsyncTcpClient

from .helpers import ServerProcess, describe, synthesize
from .test_openai import decode
from .test_voice_api import _form
from .xtts_fixture import engine_config

SENTENCE = "Good morning, the lights are off."


@pytest.fixture(scope="module")
def server(tiny_xtts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = {"engines": {"piper": {}, "xtts": engine_config(tiny_xtts)}}
    process = ServerProcess(Path(tmp_path_factory.mktemp("cloned")), config).start()
    yield process
    assert process.stop() == 0, process.log()


async def _names(server: ServerProcess) -> set[str]:
    return {v.name for v in (await describe(server.port)).tts[0].voices}


async def test_register_speak_through_both_doors_and_delete(
    server: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    async with aiohttp.ClientSession() as session:
        url = f"{server.base_url}/audio/voices"
        async with session.post(url, data=_form("grandpa", audio, languages="en_US")) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
        payload = {"name": "grandma", "audio": base64.b64encode(audio).decode()}
        async with session.post(url, json=payload) as r:
            assert r.status == 201, await r.text()
    assert created["served_as"] == [{"voice": "grandpa", "engine": "xtts"}]
    assert {"grandpa", "grandma"} <= await _names(server)

    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        for name in ("grandpa", "grandma"):
            speech = await synthesize(client, SENTENCE, name)
            assert not speech.errors, speech.errors
            assert speech.rate == 24000 and speech.duration > 0.1

    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    wav = client.audio.speech.create(
        model="xtts", voice="grandpa", input=SENTENCE, response_format="wav"
    ).content
    samples, rate = decode(wav, "wav")
    assert rate == 24000 and len(samples) > 0.1 * rate
    voices = client.get("/audio/voices", cast_to=object)["voices"]
    assert {"grandpa", "grandma"} <= {v["id"] for v in voices}

    client.audio.voices.delete("grandpa")
    assert "grandpa" not in await _names(server)
    assert "grandpa" not in {v["id"] for v in client.get("/audio/voices", cast_to=object)["voices"]}
    with pytest.raises(openai.NotFoundError):
        client.audio.speech.create(model="tts-1", voice="grandpa", input=SENTENCE)
    async with AsyncTcpClient("127.0.0.1", server.port) as wyoming:
        gone = await synthesize(wyoming, SENTENCE, "grandpa")
        assert [e.code for e in gone.errors] == ["voice-not-found"]
    async with (
        aiohttp.ClientSession() as session,
        session.patch(f"{server.base_url}/audio/voices/grandma", json={"languages": ["de"]}) as r,
    ):
        assert r.status == 200
    voices = {v.name: v for v in (await describe(server.port)).tts[0].voices}
    assert voices["grandma"].languages[0] == "de"
    client.audio.voices.delete("grandma")

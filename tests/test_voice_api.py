"""Voice library over HTTP: registration, validation, races and deletion, on a real server."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import openai
import pytest
import soundfile

from .helpers import ServerProcess

KEY = "sk-voices"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = {"openai": {"api_keys": [KEY]}, "voice_library": {"allow_url_voices": True}}
    process = ServerProcess(Path(tmp_path_factory.mktemp("voice-api")), config).start()
    yield process
    assert process.stop() == 0, process.log()


def _library(server: ServerProcess) -> list[str]:
    root = Path(server.config["voices_dir"])
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


async def _post(server: ServerProcess, key: str | None = KEY, **kwargs) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.post(f"{server.base_url}/audio/voices", **kwargs) as response,
    ):
        return response.status, await response.json()


def _form(name: str, audio: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("name", name)
    for key, value in fields.items():
        form.add_field(key, value)
    form.add_field("file", audio, filename="sample.wav", content_type="audio/wav")
    return form


def test_register_with_the_sdk_read_and_delete(server: ServerProcess, reference_wav: Path) -> None:
    client = _client(server)
    with reference_wav.open("rb") as sample:
        voice = client.audio.voices.create(
            name="sdk-voice",
            audio_sample=sample,
            consent="cons_local",
            extra_body={"transcript": "The front door is locked.", "languages": "en_US"},
        )
    assert (voice.id, voice.object, voice.type) == ("sdk-voice", "audio.voice", "audio_sample")
    assert voice.created_at > 0
    assert _library(server) == ["sdk-voice"]
    details = client.get("/audio/voices/sdk-voice", cast_to=object)
    assert details["transcript"] == "The front door is locked."
    assert details["languages"] == ["en_US"]
    assert details["available"] is True
    deleted = client.audio.voices.delete("sdk-voice")
    assert deleted.deleted and deleted.object == "audio.voice.deleted"
    assert _library(server) == []
    with pytest.raises(openai.NotFoundError):
        client.audio.voices.delete("sdk-voice")


async def test_register_by_form_and_by_base64_then_patch(
    server: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    status, body = await _post(
        server, data=_form("form-voice", audio, languages="en_US,de", default_language="de")
    )
    assert status == 201, body
    assert body["languages"] == ["en_US", "de"] and body["default_language"] == "de"
    payload = {
        "name": "json-voice",
        "audio": "data:audio/wav;base64," + base64.b64encode(audio).decode(),
        "engines": ["xtts"],
        "description": "Joe, cloned",
    }
    status, body = await _post(server, json=payload)
    assert status == 201, body
    assert body["engines"] == ["xtts"] and body["description"] == "Joe, cloned"
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session,
        session.patch(
            f"{server.base_url}/audio/voices/json-voice",
            json={"display_name": "Joe", "transcript": "Hello."},
        ) as response,
    ):
        assert response.status == 200
        changed = await response.json()
    assert (changed["name"], changed["transcript"]) == ("Joe", "Hello.")
    assert _library(server) == ["form-voice", "json-voice"]
    for name in ("form-voice", "json-voice"):
        _client(server).audio.voices.delete(name)


def _wav(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


async def test_bad_registrations_get_clear_errors_and_leave_nothing(
    server: ServerProcess, reference_wav: Path
) -> None:
    speech, rate = soundfile.read(reference_wav, dtype="int16")
    cases = [
        (_form("junk", b"this is not audio" * 50), 400, "invalid_audio", "not a readable"),
        (_form("short", _wav(speech[rate : 2 * rate], rate)), 400, "invalid_audio", "too short"),
        (_form("quiet", _wav(np.zeros(5 * rate, np.int16), rate)), 400, "invalid_audio", "silent"),
        (_form("../../etc", reference_wav.read_bytes()), 400, "invalid_request", "voice name"),
        (_form("huge", b"\0" * (50 * 1024 * 1024)), 413, "payload_too_large", "limit"),
    ]
    for form, status, code, message in cases:
        got, body = await _post(server, data=form)
        assert (got, body["error"]["code"]) == (status, code), body
        assert message in body["error"]["message"]
    assert _library(server) == []
    got, body = await _post(server, json={"name": "nothing"})
    assert got == 400 and "reference recording" in body["error"]["message"]
    got, body = await _post(server, key=None, data=_form("nokey", reference_wav.read_bytes()))
    assert got == 401
    got, body = await _post(
        server, json={"name": "local", "audio_url": f"http://127.0.0.1:{server.http_port}/health"}
    )
    assert got == 400 and "not a public address" in body["error"]["message"]
    assert _library(server) == []


async def test_racing_registrations_create_one_voice(
    server: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    results = await asyncio.gather(*(_post(server, data=_form("twin", audio)) for _ in range(2)))
    assert sorted(status for status, _ in results) == [201, 409]
    conflict = next(body for status, body in results if status == 409)
    assert conflict["error"]["code"] == "voice_exists"
    assert _library(server) == ["twin"]
    got, _ = await _post(server, data=_form("twin", audio))
    assert got == 409
    _client(server).audio.voices.delete("twin")

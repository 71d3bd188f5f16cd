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


async def _request(server: ServerProcess, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session,
        session.request(method, f"{server.base_url}/audio/voices{path}", **kwargs) as response,
    ):
        return response.status, await response.json()


def _json_voice(name: str, audio: bytes, **fields: object) -> dict:
    return {"name": name, "audio": base64.b64encode(audio).decode(), **fields}


async def test_metadata_of_the_wrong_type_is_refused(
    server: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    wrong = [
        ("transcript", {"text": "hello"}),
        ("display_name", ["Joe"]),
        ("description", 123),
        ("default_language", 5),
        ("languages", [1, 2]),
    ]
    for field, value in wrong:
        status, body = await _post(server, json=_json_voice("typed", audio, **{field: value}))
        assert (status, body["error"]["code"]) == (400, "invalid_request"), (field, body)
    assert _library(server) == []
    status, body = await _post(server, json=_json_voice("typed", audio))
    assert status == 201, body
    for field, value in wrong:
        status, body = await _request(server, "PATCH", "/typed", json={field: value})
        assert (status, body["error"]["code"]) == (400, "invalid_request"), (field, body)
    status, body = await _request(server, "PATCH", "/typed", json={"transcript": {"a": 1}})
    assert "voice.transcript: expected text, got dict" in body["error"]["message"]
    status, body = await _request(server, "GET", "/typed")
    assert (status, body["available"], body["transcript"]) == (200, True, None)
    _client(server).audio.voices.delete("typed")


async def test_names_are_matched_whole_and_without_regard_to_case(
    server: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    for name in ("joe\n", "joe\r\n", " joe", "joé"):
        status, body = await _post(server, json=_json_voice(name, audio))
        assert (status, body["error"]["code"]) == (400, "invalid_request"), (name, body)
    assert (await _request(server, "GET", "/joe%0A"))[0] == 400
    assert (await _post(server, data=_form("probe_ok", audio)))[0] == 201
    status, body = await _post(server, data=_form("PROBE_OK", audio))
    assert (status, body["error"]["code"]) == (409, "voice_exists"), body
    assert "'probe_ok' already exists" in body["error"]["message"]
    # Racing in different cases: exactly one is registered.
    racing = await asyncio.gather(
        *(_post(server, data=_form(name, audio)) for name in ("Race-Me", "race-me", "RACE-ME"))
    )
    assert sorted(status for status, _ in racing) == [201, 409, 409], racing
    assert sorted(name.lower() for name in _library(server)) == ["probe_ok", "race-me"]
    for name in _library(server):
        _client(server).audio.voices.delete(name)


async def test_repairing_a_broken_voice_yaml_keeps_what_it_can(
    server: ServerProcess, reference_wav: Path
) -> None:
    status, body = await _post(server, json=_json_voice("mended", reference_wav.read_bytes()))
    assert status == 201, body
    created = body["created_at"]
    meta = Path(server.config["voices_dir"]) / "mended" / "voice.yaml"
    stored = meta.read_text()
    # Wrong types beside valid fields: the valid ones (created, languages) survive.
    meta.write_text(stored + "transcript: {a: 1}\nlanguages: [de]\n")
    status, body = await _request(server, "GET", "/mended")
    assert body["available"] is False and "voice.yaml" in body["error"], body
    status, body = await _request(server, "PATCH", "/mended", json={"transcript": "Fixed."})
    assert status == 200, body
    assert (body["available"], body["created_at"], body["transcript"]) == (True, created, "Fixed.")
    assert body["languages"] == ["de"]
    # Not even YAML: the time comes from the recording.
    meta.write_text("created: [unclosed\n")
    status, body = await _request(server, "PATCH", "/mended", json={"description": "again"})
    assert status == 200 and body["available"], body
    recorded = int(meta.with_name("reference.wav").stat().st_mtime)
    assert body["created_at"] == recorded
    _client(server).audio.voices.delete("mended")


async def test_malformed_audio_urls_get_a_400(server: ServerProcess) -> None:
    for url, message in [
        ("http://x:notaport/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("http://example.com:99999/a.wav", "not a valid URL"),
        (f"http://{'a' * 70}.example/a.wav", "cannot resolve host"),  # not a valid DNS label
        (42, "must be text"),
    ]:
        status, body = await _post(server, json={"name": "fetched", "audio_url": url})
        assert (status, body["error"]["code"]) == (400, "invalid_request"), (url, body)
        assert message in body["error"]["message"], (url, body)
    assert _library(server) == []


async def test_changing_and_deleting_a_voice_at_once(
    server: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    root = str(Path(server.config["voices_dir"]).parent)
    for _ in range(8):  # without the fix, a round in these 8 gave a 500 in each of 3 runs
        assert (await _post(server, data=_form("contested", audio)))[0] == 201
        results = await asyncio.gather(
            _request(server, "PATCH", "/contested", json={"description": "changed"}),
            _request(server, "DELETE", "/contested"),
            _request(server, "DELETE", "/contested"),
        )
        for status, body in results:
            assert status in (200, 404), body
            assert root not in str(body)
        assert _library(server) == []

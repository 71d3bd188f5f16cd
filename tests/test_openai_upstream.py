"""OpenAI-compatible speech servers as engines (openai_api): the real fastkokoro (PyPI), a
second wyoming-polytts's own OpenAI app, and a scripted server that misbehaves on cue."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
import soundfile
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from bench.scripted_upstream import Script, ScriptedUpstream
from bench.server_process import HttpProcess
from bench.upstream import VOICE, direct_body, fastkokoro, upstream_section
from wyoming_polytts.gpu_check.recording import piper_recording

from .helpers import (
    TIMEOUT,
    ServerProcess,
    Speech,
    assert_speech_like,
    free_port,
    get_json,
    read_until,
    speak,
    voice,
    voices_by_name,
    wait_for_voice,
)

JOE = "en_US-joe-medium"
SENTENCE = "The garage door is closed and all the lights are off."
ANSWER = "The garage door is closed. All the lights are off. Good night."
POLY_KEY = "poly-right-key-4711"
SCRIPT_KEY = "sk-scripted-secret-0815"
QUIET_PIPER = {"noise_scale": 0.0, "noise_w_scale": 0.0}
"""Piper without noise says the same text the same way, so durations can be compared."""


@pytest.fixture(scope="module")
def kokoro(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpProcess]:
    """fastkokoro from PyPI, installed into a venv of its own on first use."""
    upstream = fastkokoro(tmp_path_factory.mktemp("fastkokoro")).start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Another wyoming-polytts whose OpenAI app wants a key for speech."""
    config = {"engines": {"piper": QUIET_PIPER}, "openai": {"api_keys": [POLY_KEY]}}
    process = ServerProcess(tmp_path_factory.mktemp("second"), config).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedUpstream]:
    audio, rate = soundfile.read(io.BytesIO(piper_recording()), dtype="int16")
    script = Script(audio=audio, rate=rate, voices=["echo"], key=SCRIPT_KEY)
    upstream = ScriptedUpstream(script).start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    kokoro: HttpProcess,
    second: ServerProcess,
    scripted: ScriptedUpstream,
) -> Iterator[ServerProcess]:
    quick = {"refresh_interval": 1.0, "max_backoff": 1.0}
    engines: dict[str, Any] = {
        "piper": QUIET_PIPER,
        "openai_api": upstream_section(kokoro, languages={"default": ["en_US"]}),
        "openai_api-wav": upstream_section(
            kokoro,
            prefix="fkw-",
            response_format="wav",
            voices=[VOICE, "ghost"],
            sample_rate=22050,
            extra_body={},
        ),
        "openai_api-poly": {
            "base_url": second.base_url,
            "api_key_env": "TEST_POLY_KEY",
            "prefix": "poly-",
            **quick,
        },
        "openai_api-badkey": {
            "base_url": second.base_url,
            "api_key_env": "TEST_WRONG_KEY",
            "prefix": "bad-",
            "response_format": "wav",
        },
        "openai_api-scripted": {
            "base_url": scripted.base_url,
            "api_key_env": "TEST_SCRIPT_KEY",
            "prefix": "s-",
            "sample_rate": scripted.script.rate,
            "request_timeout": 2.0,
            "extra_body": {"lang": "en-us"},
            **quick,
        },
        "openai_api-listed": {
            "base_url": scripted.base_url,
            "api_key_env": "TEST_SCRIPT_KEY",
            "prefix": "listed-",
            "voices": ["echo", "missing"],
            "response_format": "wav",
            "refresh_interval": 3600.0,  # asks only when a request fails
        },
        "openai_api-gone": {
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "prefix": "gone-",
            "voices": ["nobody"],
            "connect_timeout": 1.0,
        },
    }
    keys = {"TEST_POLY_KEY": POLY_KEY, "TEST_WRONG_KEY": "wrong", "TEST_SCRIPT_KEY": SCRIPT_KEY}
    with pytest.MonkeyPatch.context() as env:
        for name, value in keys.items():
            env.setenv(name, value)
        process = ServerProcess(tmp_path_factory.mktemp("front"), {"engines": engines}).start()
    yield process
    assert process.stop() == 0, process.log()
    log = process.log()
    assert "Traceback" not in log
    for key in (POLY_KEY, SCRIPT_KEY):
        assert key not in log, "an API key reached the log"


@pytest.fixture
def api(server: ServerProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=TIMEOUT)


async def _direct(base_url: str, body: dict[str, Any], key: str | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/audio/speech", json=body, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.read()


# --- voices ----------------------------------------------------------------


async def test_voices_merged_and_named(server: ServerProcess) -> None:
    voices = await voices_by_name(server.port)
    assert {JOE, f"fk-{VOICE}", "fk-jf_alpha", f"fkw-{VOICE}", "fkw-ghost"} <= set(voices)
    assert {f"poly-{JOE}", f"bad-{JOE}", "s-echo", "listed-echo", "gone-nobody"} <= set(voices)
    relayed = voices[f"fk-{VOICE}"]
    assert relayed.installed and relayed.languages == ["en_US"]
    assert (relayed.description or "").startswith(f"{VOICE} (kokoro)")
    # Another wyoming-polytts says its voice's language and description itself.
    poly = voices[f"poly-{JOE}"]
    assert poly.installed and poly.languages == ["en_US"]
    listing = await get_json(server, "/v1/audio/voices")
    engines = {v["id"]: v["engine"] for v in listing["voices"]}
    assert engines[f"fk-{VOICE}"] == "openai_api"
    assert engines["s-echo"] == "openai_api-scripted"


async def test_unreachable_upstream_lists_its_voices_as_unavailable(server: ServerProcess) -> None:
    gone = await wait_for_voice(server, "gone-nobody", installed=False)
    assert "is down" in (gone.description or "")
    speech = await speak(server.port, SENTENCE, "gone-nobody")
    assert [e.code for e in speech.errors] == ["engine-unavailable"]
    health = await get_json(server, "/health")
    detail = health["engines"]["openai_api-gone"]["detail"]
    assert health["status"] == "degraded"
    assert detail["state"] == "down" and not detail["ok"] and detail["error"]


# --- speech from fastkokoro ---------------------------------------------------


async def test_fastkokoro_pcm_through_wyoming(server, kokoro, transcriber) -> None:
    """Streamed pcm relayed sentence by sentence: what Whisper hears, as long as direct."""
    direct = np.frombuffer(await _direct(kokoro.base_url, direct_body(SENTENCE)), "<i2")
    relayed = await speak(server.port, SENTENCE, f"fk-{VOICE}")
    assert not relayed.errors
    assert relayed.rate == 24000
    assert abs(relayed.duration - len(direct) / 24000) < 0.05
    transcriber.assert_says(relayed.samples, relayed.rate, SENTENCE)


async def test_fastkokoro_wav_through_the_openai_app(api, kokoro, transcriber) -> None:
    """WAV read header first and resampled to the advertised 22050 Hz."""
    direct, direct_rate = soundfile.read(
        io.BytesIO(
            await _direct(
                kokoro.base_url,
                {**direct_body(SENTENCE), "stream": False, "response_format": "wav"},
            )
        ),
        dtype="int16",
    )
    response = await api.audio.speech.create(
        model="tts-1", voice=f"fkw-{VOICE}", input=SENTENCE, response_format="wav"
    )
    samples, rate = soundfile.read(io.BytesIO(response.content), dtype="int16")
    assert (direct_rate, rate) == (24000, 22050)
    assert abs(len(samples) / rate - len(direct) / direct_rate) < 0.05
    transcriber.assert_says(samples, rate, SENTENCE)


async def test_a_configured_voice_the_upstream_does_not_have(server: ServerProcess) -> None:
    speech = await speak(server.port, SENTENCE, "fkw-ghost")
    assert [e.code for e in speech.errors] == ["synthesis-failed"]
    assert "HTTP 400" in speech.errors[0].text and "ghost" in speech.errors[0].text
    # The scripted server answers 404 for a voice it lacks: voice-not-found.
    missing = await speak(server.port, SENTENCE, "listed-missing")
    assert [e.code for e in missing.errors] == ["voice-not-found"]
    assert "voice_not_found" in missing.errors[0].text
    unknown = await speak(server.port, SENTENCE, "fk-nobody")
    assert [e.code for e in unknown.errors] == ["voice-not-found"]


# --- a second wyoming-polytts ---------------------------------------------------


async def test_second_polytts_through_wyoming(server, second, transcriber) -> None:
    body = {"model": "tts-1", "input": ANSWER, "voice": JOE, "response_format": "pcm"}
    direct = np.frombuffer(await _direct(second.base_url, body, POLY_KEY), "<i2")
    relayed = await speak(server.port, ANSWER, f"poly-{JOE}")
    assert not relayed.errors and relayed.rate == 24000
    assert abs(relayed.duration - len(direct) / 24000) < 0.05
    assert_speech_like(relayed.samples, relayed.rate, ANSWER)
    transcriber.assert_says(relayed.samples, relayed.rate, ANSWER)


async def test_a_key_the_upstream_refuses(server: ServerProcess) -> None:
    """The second server's own 401 reaches the client as synthesis-failed, with its code."""
    speech = await speak(server.port, SENTENCE, f"bad-{JOE}")
    assert [e.code for e in speech.errors] == ["synthesis-failed"]
    assert "HTTP 401" in speech.errors[0].text and "invalid_api_key" in speech.errors[0].text


# --- the scripted server ---------------------------------------------------------


async def test_audio_leaves_before_the_upstream_has_finished(server, scripted) -> None:
    """The scripted server holds back all but its first piece until the client has heard it."""
    scripted.script.hold = threading.Event()
    try:
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Synthesize(text=SENTENCE, voice=voice("s-echo")).event())
            speech = await read_until(client, Speech(), "audio-chunk", "error")
            assert not speech.errors and speech.audio
            scripted.script.hold.set()
            await read_until(client, speech, "audio-stop")
    finally:
        scripted.script.hold.set()  # never leave the scripted server waiting
        scripted.script.hold = None
    assert len(speech.samples) == len(scripted.script.audio)


async def test_speed_instructions_and_extra_body_reach_the_upstream(api, scripted) -> None:
    scripted.script.bodies.clear()
    response = await api.audio.speech.create(
        model="tts-1",
        voice="s-echo",
        input=SENTENCE,
        response_format="pcm",
        speed=1.5,
        instructions="Speak calmly.",
    )
    assert len(response.content) > 0
    (body,) = scripted.script.bodies
    assert body == {
        "lang": "en-us",
        "model": "tts-1",
        "input": SENTENCE,
        "voice": "echo",
        "response_format": "pcm",
        "speed": 1.5,
        "instructions": "Speak calmly.",
    }
    # An engine that takes no style prompt ignores it.
    joe = await api.audio.speech.create(
        model="tts-1", voice=JOE, input=SENTENCE, response_format="pcm", instructions="Calmly."
    )
    assert len(joe.content) > 0


async def test_an_error_answer_reaches_the_client(api, server, scripted) -> None:
    scripted.script.speech_status = 500
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            await api.audio.speech.create(model="tts-1", voice="s-echo", input=SENTENCE)
    finally:
        scripted.script.speech_status = 200
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "synthesis_failed"
    assert "HTTP 500: the model fell over (scripted_failure)" in error["message"]
    assert not (await speak(server.port, SENTENCE, "s-echo")).errors


async def test_a_refused_key_is_masked_and_marks_the_voices_down(server, scripted) -> None:
    """The scripted 401 repeats the key it was sent: it is masked; the voices go and return."""
    scripted.script.key = "another-key"
    try:
        speech = await speak(server.port, SENTENCE, "listed-echo")
        assert [e.code for e in speech.errors] == ["synthesis-failed"]
        text = speech.errors[0].text
        assert "Incorrect API key provided: ***" in text and SCRIPT_KEY not in text
        # The failed request has the link ask again: the voices go, with the reason.
        for name in ("listed-echo", "s-echo"):
            down = await wait_for_voice(server, name, installed=False)
            assert "HTTP 401" in (down.description or "")
            assert SCRIPT_KEY not in (down.description or "")
    finally:
        scripted.script.key = SCRIPT_KEY
    await wait_for_voice(server, "s-echo", installed=True)
    assert not (await speak(server.port, SENTENCE, "s-echo")).errors


async def test_server_errors_mark_the_voices_down(server, scripted) -> None:
    scripted.script.voices_status = 503
    try:
        down = await wait_for_voice(server, "s-echo", installed=False)
        assert "HTTP 503" in (down.description or "")
    finally:
        scripted.script.voices_status = 200
    await wait_for_voice(server, "s-echo", installed=True)


async def test_a_stalled_upstream_times_out(server, scripted) -> None:
    scripted.script.stall = 60.0
    try:
        speech = await speak(server.port, SENTENCE, "s-echo")
    finally:
        scripted.script.stall = 0.0
    assert [e.code for e in speech.errors] == ["synthesis-failed"]
    assert "sent nothing for 2 s" in speech.errors[0].text
    await wait_for_voice(server, "s-echo", installed=True)
    assert not (await speak(server.port, SENTENCE, "s-echo")).errors


# --- last: the second server goes away and comes back ---------------------------------


async def test_upstream_stopped_and_restarted(server, second) -> None:
    assert second.stop() == 0
    down = await wait_for_voice(server, f"poly-{JOE}", installed=False)
    assert "is down" in (down.description or "")
    speech = await speak(server.port, SENTENCE, f"poly-{JOE}")
    assert [e.code for e in speech.errors] == ["engine-unavailable"]
    await asyncio.to_thread(second.start)
    await wait_for_voice(server, f"poly-{JOE}", installed=True)
    back = await speak(server.port, SENTENCE, f"poly-{JOE}")
    assert not back.errors
    assert_speech_like(back.samples, back.rate, SENTENCE)

"""The OpenAI-compatible API against the real server, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import av
import numpy as np
import openai
import pytest
import soundfile as sf

from .helpers import TIMEOUT, ServerProcess, assert_speech_like, get_json

ANSWER = "The garage door is closed. All the lights are off. Good night."
"""Heard without error by Whisper tiny from Piper in every run tried (a "front door is"
sentence is sometimes heard as "front door's")."""
LONG = " ".join(f"This is sentence number {n} of a rather long bedtime story." for n in range(40))
VOICE_RATE = 22050
"""Hertz of Piper's en_US-joe-medium."""

DECODED_RATES = {
    "mp3": VOICE_RATE,
    "opus": 48000,  # Opus decoders always output 48 kHz
    "aac": VOICE_RATE,
    "flac": VOICE_RATE,
    "wav": VOICE_RATE,
    "pcm": 24000,  # OpenAI's raw PCM rate, resampled from the voice's
}
SOUNDFILE_READS = ("mp3", "opus", "wav", "pcm")
"""Formats libsndfile decodes when streamed (not AAC; not FLAC of unknown length)."""

ORIGIN = "http://webui.test"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: default engines, an alias and CORS for one origin."""
    config = {
        "openai": {
            "voice_aliases": {"narrator": "en_US-joe-medium", "ghost": "piper:nobody"},
            "cors_origins": [ORIGIN],
            "max_input_chars": 3000,
        }
    }
    process = ServerProcess(Path(tmp_path_factory.mktemp("openai")), config).start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def client(api: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def async_client(api: ServerProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=api.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT
    )


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    """Mono int16 samples and rate, decoded with PyAV (raw pcm as OpenAI defines it)."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2"), DECODED_RATES["pcm"]
    resampler = av.AudioResampler(format="s16", layout="mono")
    pieces = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(pieces), rate


def decode_soundfile(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        raw = {"format": "RAW", "subtype": "PCM_16", "samplerate": 24000, "channels": 1}
        samples, rate = sf.read(io.BytesIO(data), dtype="int16", **raw)
    else:
        samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    return samples, rate


# --- formats --------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(DECODED_RATES))
def test_each_format_decodes_and_says_the_text(
    client: openai.OpenAI, transcriber, fmt: str
) -> None:
    speech = client.audio.speech.create(
        model="tts-1", voice="alloy", input=ANSWER, response_format=fmt
    )
    data = speech.content
    samples, rate = decode(data, fmt)
    assert rate == DECODED_RATES[fmt]
    assert_speech_like(samples, rate, ANSWER)
    transcriber.assert_says(samples, rate, ANSWER)
    if fmt in SOUNDFILE_READS:
        sf_samples, sf_rate = decode_soundfile(data, fmt)
        assert sf_rate == rate
        assert abs(len(sf_samples) - len(samples)) / rate < 0.1
    if fmt == "wav":  # streamed: sizes that mark an open-ended stream
        riff_size, data_size = struct.unpack_from("<I", data, 4), struct.unpack_from("<I", data, 40)
        assert data[:4] == b"RIFF" and data[36:40] == b"data"
        assert riff_size == data_size == (0xFFFFFFFF,)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
async def test_whole_body_has_exact_sizes(async_client: openai.AsyncOpenAI, fmt: str) -> None:
    async with async_client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="en_US-joe-medium",
        input=ANSWER,
        response_format=fmt,
        extra_body={"stream": False},
    ) as response:
        data = await response.read()
        assert int(response.headers["content-length"]) == len(data)
    samples, rate = decode(data, fmt)
    sf_samples, sf_rate = decode_soundfile(data, fmt)
    assert sf_rate == rate == VOICE_RATE
    assert_speech_like(sf_samples, sf_rate, ANSWER)
    if fmt == "wav":
        assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
        assert struct.unpack_from("<I", data, 40)[0] == len(data) - 44 == 2 * len(samples)
    if fmt == "flac":
        assert sf.info(io.BytesIO(data)).frames == len(samples)


# --- streaming ------------------------------------------------------------


async def test_first_bytes_arrive_while_synthesis_runs_and_leaving_cancels(
    api: ServerProcess, async_client: openai.AsyncOpenAI
) -> None:
    async with async_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG, response_format="mp3"
    ) as response:
        chunks = response.iter_bytes()
        first = await anext(chunks)
        assert first
        during = (await get_json(api, "/health"))["engines"]["piper"]
        second = await anext(chunks)
        assert second, "no more audio followed the first bytes"
    # The request was still in the pool when its first bytes had arrived...
    assert during["requests"] == 1
    # ...and leaving after two chunks of a long text cancels the rest (sentences
    # already running finish; nothing stays queued).
    idle = {"requests": 0, "running": 0, "waiting": 0}
    for _ in range(int(TIMEOUT * 10)):
        piper = (await get_json(api, "/health"))["engines"]["piper"]
        if idle.items() <= piper.items() and "speech cancelled" in api.log():
            break
        await asyncio.sleep(0.1)
    assert idle.items() <= piper.items()
    assert "Client left; speech cancelled" in api.log()


async def test_sse_events_carry_a_valid_stream(
    async_client: openai.AsyncOpenAI, transcriber
) -> None:
    events = []
    async with async_client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="alloy",
        input=ANSWER,
        response_format="mp3",
        stream_format="sse",
        instructions="Speak calmly.",
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    *deltas, done = events
    assert len(deltas) >= 2
    assert {e["type"] for e in deltas} == {"speech.audio.delta"}
    assert done["type"] == "speech.audio.done"
    assert set(done["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    samples, rate = decode(audio, "mp3")
    assert rate == VOICE_RATE
    assert_speech_like(samples, rate, ANSWER)
    transcriber.assert_says(samples, rate, ANSWER)


# --- voices, models, options ----------------------------------------------


@pytest.mark.parametrize(
    ("model", "voice"),
    [
        ("tts-1", {"id": "en_US-joe-medium"}),
        ("tts-1-hd", "narrator"),
        ("piper", "en_US-joe-medium"),
        ("piper", "piper:en_US-joe-medium"),
    ],
)
async def test_voice_forms_and_engine_models(
    async_client: openai.AsyncOpenAI, model: str, voice
) -> None:
    speech = await async_client.audio.speech.create(
        model=model, voice=voice, input=ANSWER, response_format="pcm"
    )
    samples, rate = decode(speech.content, "pcm")
    assert_speech_like(samples, rate, ANSWER)


async def test_speed_and_sample_rate(async_client: openai.AsyncOpenAI) -> None:
    async def duration(**options) -> float:
        speech = await async_client.audio.speech.create(
            model="tts-1", voice="alloy", input=ANSWER, response_format="wav", **options
        )
        samples, rate = decode_soundfile(speech.content, "wav")
        assert rate == options.get("extra_body", {}).get("sample_rate", VOICE_RATE)
        return len(samples) / rate

    normal = await duration()
    fast = await duration(speed=2.0)
    slow = await duration(speed=0.5, extra_body={"sample_rate": 16000})
    assert 0.4 < fast / normal < 0.65
    assert 1.6 < slow / normal < 2.5


async def test_listings_and_health(api: ServerProcess, async_client: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in async_client.models.list()]
    assert models[0] == "piper"
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= set(models)
    voices = (await get_json(api, "/v1/audio/voices"))["voices"]
    assert {
        "id": "en_US-joe-medium",
        "name": "en_US-joe-medium",
        "engine": "piper",
        "languages": ["en_US"],
    }.items() <= voices[0].items()
    assert {"id": "tts-1"} in (await get_json(api, "/v1/audio/models"))["models"]
    health = await get_json(api, "/health")
    assert health["status"] == "ok"
    assert health["engines"]["piper"]["state"] == "loaded"


# --- errors ---------------------------------------------------------------


def test_errors_in_openai_shape(client: openai.OpenAI) -> None:
    def create(**overrides):
        request = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **overrides}
        return client.audio.speech.create(**request)

    with pytest.raises(openai.NotFoundError) as unknown_voice:
        create(voice="nobody")
    assert unknown_voice.value.response.json() == {
        "error": {
            "message": unknown_voice.value.response.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": "voice",
            "code": "voice_not_found",
        }
    }
    with pytest.raises(openai.NotFoundError, match="piper:nobody"):
        create(voice="ghost")  # an alias is looked up before the catalog
    with pytest.raises(openai.NotFoundError, match="does not exist") as unknown_model:
        create(model="no-such-engine")
    assert unknown_model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="limit is 3000"):
        create(input="a" * 3001)
    with pytest.raises(openai.BadRequestError, match="speed"):
        create(speed=5.0)
    with pytest.raises(openai.BadRequestError, match="response_format"):
        create(response_format="ogg")
    with pytest.raises(openai.BadRequestError, match="sample_rate"):
        create(response_format="mp3", extra_body={"sample_rate": 16000})
    with pytest.raises(openai.APIStatusError) as too_big:
        create(extra_body={"padding": "x" * 1_100_000})
    assert too_big.value.status_code == 413
    assert too_big.value.response.json()["error"]["code"] == "payload_too_large"
    # The server keeps serving after all of that.
    assert create().content


async def test_cors_only_for_configured_origins(api: ServerProcess) -> None:
    url = f"http://127.0.0.1:{api.http_port}/v1/audio/speech"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with aiohttp.ClientSession() as session:
        async with session.options(url, headers={"Origin": ORIGIN, **preflight}) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
        async with session.get(
            f"http://127.0.0.1:{api.http_port}/v1/audio/voices", headers={"Origin": ORIGIN}
        ) as response:
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        async with session.options(
            url, headers={"Origin": "http://elsewhere.test", **preflight}
        ) as response:
            assert "Access-Control-Allow-Origin" not in response.headers

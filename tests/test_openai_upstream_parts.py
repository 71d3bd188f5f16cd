"""The openai_api engine's parts without a server: audio bodies read as they arrive,
voice lists and error bodies in the shapes servers send, options, engine options."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from openai_shim.errors import ApiError
from openai_shim.request import parse_speech_request
from wyoming_polytts.engines import engine_class, parse_engine_options
from wyoming_polytts.engines.base import EngineContext
from wyoming_polytts.engines.upstream.audio import mono_int16
from wyoming_polytts.engines.upstream.client import Audio
from wyoming_polytts.engines.upstream.listing import (
    ListedVoice,
    ListingError,
    error_message,
    parse_voice_list,
)
from wyoming_polytts.engines.upstream.openai_options import OpenAIUpstreamOptions
from wyoming_polytts.engines.upstream.wav_stream import PcmStream, WavStream
from wyoming_polytts.errors import ConfigError, InvalidRequestError, SynthesisError

from .helpers import run_cli

# --- audio bodies ---------------------------------------------------------------


def _wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _streamed(wav: bytes) -> bytes:
    """The same WAV as a server streams it: both sizes unknown (0xFFFFFFFF)."""
    data = wav.index(b"data")
    return wav[:4] + b"\xff" * 4 + wav[8 : data + 4] + b"\xff" * 4 + wav[data + 8 :]


def _feed(decoder: WavStream | PcmStream, body: bytes, cuts: list[int]) -> list[Audio]:
    pieces: list[Audio] = []
    start = 0
    for cut in [*sorted({min(c, len(body)) for c in cuts}), len(body)]:
        pieces += decoder.feed(body[start:cut])
        start = cut
    decoder.finish()
    return pieces


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(0, 3000),
    channels=st.sampled_from([1, 2]),
    rate=st.sampled_from([16000, 22050, 24000]),
    streamed=st.booleans(),
    cuts=st.lists(st.integers(0, 13000), max_size=12),
)
def test_wav_split_anywhere_gives_the_same_samples(
    frames: int, channels: int, rate: int, streamed: bool, cuts: list[int]
) -> None:
    samples = np.random.default_rng(frames).integers(-32768, 32767, (frames, channels), np.int16)
    body = _wav(samples, rate)
    pieces = _feed(WavStream(), _streamed(body) if streamed else body, cuts)
    assert all((p.rate, p.width, p.channels) == (rate, 2, channels) for p in pieces)
    assert b"".join(p.data for p in pieces) == samples.tobytes()


@pytest.mark.parametrize("subtype", ["PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_wav_sample_formats_become_16_bit(subtype: str) -> None:
    tone = (np.sin(np.arange(4800) / 8) * 0.5).astype(np.float32)
    (piece,) = WavStream().feed(_wav(tone, 24000, subtype))
    heard = mono_int16(piece)
    expected = (tone * 32767).astype(np.int16)
    assert np.abs(heard.astype(int) - expected).max() <= 260  # 8-bit: a step of 256


def test_what_follows_the_declared_data_is_dropped() -> None:
    body = _wav(np.arange(100, dtype=np.int16), 24000) + b"LIST\x04\x00\x00\x00abcd"
    pieces = _feed(WavStream(), body, [50, 100])
    assert b"".join(p.data for p in pieces) == np.arange(100, dtype=np.int16).tobytes()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "not audio at all"}', "not WAV audio"),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "no format chunk"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "ended before its audio started"),
    ],
)
def test_bad_wav_bodies_fail_clearly(body: bytes, message: str) -> None:
    decoder = WavStream()
    with pytest.raises(SynthesisError, match=message):
        decoder.feed(body)
        decoder.finish()


def test_an_unsupported_wav_format_names_it() -> None:
    body = bytearray(_wav(np.zeros(10, np.int16), 8000))
    body[20:22] = (6).to_bytes(2, "little")  # A-law
    with pytest.raises(SynthesisError, match="format 6"):
        WavStream().feed(bytes(body))


def test_pcm_keeps_a_split_sample_for_the_next_read() -> None:
    data = np.arange(-500, 500, dtype=np.int16).tobytes()
    pieces = _feed(PcmStream(24000), data, [1, 3, 4, 999, 1001])
    assert b"".join(p.data for p in pieces) == data
    assert {(p.rate, p.width, p.channels) for p in pieces} == {(24000, 2, 1)}


# --- voice lists and errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "voices"),
    [
        # Kokoro-FastAPI
        ({"voices": ["af_bella", "am_adam"]}, [ListedVoice("af_bella"), ListedVoice("am_adam")]),
        (
            {"voices": [{"id": "af_bella", "name": "Bella"}]},
            [ListedVoice("af_bella", description="Bella")],
        ),
        # vLLM-Omni: built-in and uploaded voices
        (
            {
                "voices": ["vivian", "ryan"],
                "uploaded_voices": [{"name": "grandma", "speaker_description": "warm, slow"}],
            },
            [ListedVoice("vivian"), ListedVoice("ryan"), ListedVoice("grandma", [], "warm, slow")],
        ),
        # An OpenAI-style list, with locales
        (
            {"object": "list", "data": [{"id": "nova", "locale": "en-US"}, {"id": "nova"}]},
            [ListedVoice("nova", ["en_US"])],
        ),
        # wyoming-polytts's own listing
        (
            {
                "voices": [
                    {"id": "joe", "name": "joe", "languages": ["en_US"], "description": "Joe"},
                    {"id": "x", "name": "x", "installed": False, "reason": "engine failed"},
                ],
                "library": {"voices": []},
            },
            [
                ListedVoice("joe", ["en_US"], "Joe"),
                ListedVoice("x", installed=False, reason="engine failed"),
            ],
        ),
        (["a", "", {"nothing": 1}, 7], [ListedVoice("a")]),
    ],
)
def test_voice_lists_in_the_shapes_servers_send(answer: object, voices: list[ListedVoice]) -> None:
    assert parse_voice_list(answer) == voices


@pytest.mark.parametrize("answer", [{"models": []}, "voices", None, {"voices": "a"}])
def test_what_is_no_voice_list_is_refused(answer: object) -> None:
    with pytest.raises(ListingError):
        parse_voice_list(answer)


@pytest.mark.parametrize(
    ("data", "text", "expected"),
    [
        (
            {"error": {"message": "Invalid key", "type": "x", "code": "invalid_api_key"}},
            "",
            ("Invalid key", "invalid_api_key"),
        ),
        ({"error": {"message": "No", "type": "server_error"}}, "", ("No", "server_error")),
        ({"detail": "Voice 'x' is not available"}, "", ("Voice 'x' is not available", None)),
        (
            {"detail": {"error": "validation_error", "message": "Bad speed", "type": "bad"}},
            "",
            ("Bad speed", "bad"),
        ),
        (
            {"detail": [{"type": "greater_than_equal", "msg": "speed too low"}]},
            "",
            ("speed too low", "greater_than_equal"),
        ),
        ({"error": "Unknown voice 'x'"}, "", ("Unknown voice 'x'", None)),
        (None, "Bad Gateway\n", ("Bad Gateway", None)),
        (None, "", ("no details", None)),
    ],
)
def test_error_bodies_in_the_shapes_servers_send(
    data: object, text: str, expected: tuple[str, str | None]
) -> None:
    assert error_message(data, text) == expected


# --- options --------------------------------------------------------------------


def _options(name: str = "openai_api", **raw: object) -> OpenAIUpstreamOptions:
    options = parse_engine_options(name, {"base_url": "http://gpu-box:8091/v1", **raw})
    assert isinstance(options, OpenAIUpstreamOptions)
    return options


def test_defaults() -> None:
    options = _options()
    assert (options.model, options.response_format, options.sample_rate) == ("tts-1", "pcm", 24000)
    assert options.voices is None and options.api_key() is None
    assert options.languages_of("anyone") == ["en_US"]
    assert _options(languages={"default": ["de_DE"], "x": ["zh_CN", "en_US"]}).languages_of(
        "x"
    ) == ["zh_CN", "en_US"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"base_url": None}, "engines.openai_api.base_url: expected the API's root"),
        ({"base_url": "tcp://host:1/v1"}, "expected http"),
        ({"base_url": "http://user:secret@host/v1"}, "put the key in api_key_env"),
        ({"extra_body": {"voice": "x"}}, "extra_body.voice: set by the engine itself"),
        ({"sample_rate": 24}, "sample_rate: expected Hertz"),
        ({"response_format": "mp3"}, "expected one of 'pcm', 'wav'"),
        ({"request_timeout": 0}, "request_timeout: expected a number above 0"),
        ({"languages": {"default": []}}, "languages.default: expected at least one"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _options(**raw)


def test_another_instance_names_its_own_section() -> None:
    with pytest.raises(ConfigError, match=r"^engines\.openai_api-gpu\.sample_rate"):
        _options("openai_api-gpu", sample_rate=5)


def test_the_key_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = EngineContext(cache_dir=tmp_path, voices_dir=tmp_path, threads=1, base_dir=tmp_path)
    options = _options(api_key_env="TEST_OPENAI_API_KEY")
    monkeypatch.delenv("TEST_OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="TEST_OPENAI_API_KEY is not set"):
        engine_class("openai_api")(options, context)
    monkeypatch.setenv("TEST_OPENAI_API_KEY", " sk-123 ")
    assert options.api_key() == "sk-123"


def test_a_missing_key_variable_stops_the_server(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "engines:\n  openai_api:\n    base_url: http://127.0.0.1:9/v1\n"
        "    api_key_env: TEST_SURELY_UNSET_KEY\n",
        encoding="utf-8",
    )
    result = run_cli("--config", str(config))
    assert result.returncode == 2
    assert "TEST_SURELY_UNSET_KEY is not set" in result.stderr


# --- instructions -----------------------------------------------------------------


def test_instructions_go_only_to_engines_that_take_them(tmp_path: Path) -> None:
    context = EngineContext(cache_dir=tmp_path, voices_dir=tmp_path, threads=1, base_dir=tmp_path)
    relay = engine_class("openai_api")(_options(voices=["a"]), context)
    wyoming = engine_class("wyoming")(
        parse_engine_options("wyoming", {"uri": "tcp://h:1"}), context
    )
    styled = {"instructions": "Speak calmly."}
    assert relay.check_options(styled) == styled
    assert wyoming.check_options(styled) == {}  # ignored, not refused
    with pytest.raises(InvalidRequestError, match="has no option 'temperature'"):
        relay.check_options({**styled, "temperature": 0.5})


def test_the_front_door_passes_instructions_on() -> None:
    body = {"input": "Hi.", "instructions": "Whisper."}
    assert parse_speech_request(body, 100).engine_options == {"instructions": "Whisper."}
    assert parse_speech_request({**body, "instructions": "  "}, 100).engine_options == {}
    with pytest.raises(ApiError, match="'instructions' is 101 characters long"):
        parse_speech_request({**body, "instructions": "x" * 101}, 100)

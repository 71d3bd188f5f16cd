"""The XTTS engine on a tiny, randomly initialised XTTS built from coqui-tts's classes.

The model speaks noise, but through coqui-tts's real loading, conditioning and
streaming code; checks that need real weights and a GPU are marked ``gpu``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from wyoming_polytts.common.language import LanguageDetector, locale_style, match_language
from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.xtts.conditioning import CACHE_FILE
from wyoming_polytts.engines.xtts.engine import XttsEngine
from wyoming_polytts.engines.xtts.options import XttsOptions
from wyoming_polytts.errors import (
    EngineUnavailableError,
    InvalidRequestError,
    SynthesisError,
    VoiceNotFoundError,
)
from wyoming_polytts.library.library import VoiceLibrary

from .helpers import ServerProcess, Speech, describe, read_until, synthesize
from .test_voice_library import LIMITS
from .xtts_fixture import SPEAKERS, TINY_SETTINGS, engine_config, reference_audio

RATE = 24000
SENTENCE = "The quick brown fox jumps over the lazy dog."
TOO_LONG = (
    "The front door is locked and the lights are off, the garage is closed, the windows "
    "are shut and the alarm is set for the night, so everyone can sleep well until morning."
)
GERMAN = "Guten Morgen, die Haustür ist abgeschlossen und das Licht ist aus."
ENGLISH = "Good morning, the front door is locked and the lights are off."


def hand_made_voice(
    library: VoiceLibrary, name: str, pitch: float, languages: list[str], seconds: float = 3.0
) -> Path:
    """A voice made by hand: a folder with a recording and a voice.yaml."""
    folder = library.root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "voice.yaml").write_text(yaml.safe_dump({"languages": languages}), encoding="utf-8")
    return reference_audio(folder / "reference.wav", pitch, seconds)


def _context(tmp: Path, library: VoiceLibrary | None = None) -> EngineContext:
    return EngineContext(
        cache_dir=tmp / "cache",
        voices_dir=tmp / "voices",
        threads=2,
        base_dir=tmp,
        reference_voices=library or VoiceLibrary(tmp / "voices", LIMITS),
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> VoiceLibrary:
    voices = VoiceLibrary(tmp_path_factory.mktemp("library"), LIMITS)
    hand_made_voice(voices, "grandma", 180.0, ["de_DE"])
    hand_made_voice(voices, "blip", 200.0, [], seconds=0.5)
    return voices


@pytest.fixture(scope="module")
def engine(tiny_xtts: Path, library: VoiceLibrary, tmp_path_factory) -> Iterator[XttsEngine]:
    options = XttsOptions(checkpoint_dir=str(tiny_xtts), device="cpu", **TINY_SETTINGS)
    xtts = XttsEngine(options, _context(tmp_path_factory.mktemp("engine"), library))
    xtts.load()
    yield xtts
    xtts.unload()


def _speak(engine: XttsEngine, text: str, voice: str, **kwargs) -> list[np.ndarray]:
    return list(engine.synthesize(SynthesisRequest(text=text, voice=voice, **kwargs)))


def _first_piece(engine: XttsEngine, text: str, voice: str, **kwargs) -> list[np.ndarray]:
    """A request whose client leaves after the first piece of audio."""
    stream = engine.synthesize(SynthesisRequest(text=text, voice=voice, **kwargs))
    try:
        return [next(stream)]
    finally:
        stream.close()


def _assert_audio(pieces: list[np.ndarray]) -> np.ndarray:
    assert pieces, "no audio"
    for piece in pieces:
        assert piece.dtype == np.int16 and piece.ndim == 1 and piece.size > 0
    audio = np.concatenate(pieces)
    assert np.abs(audio).max() > 0, "silence"
    return audio


# --- voices and streaming ---------------------------------------------------------


def test_voices_studio_speakers_and_library(engine: XttsEngine) -> None:
    voices = {v.id: v for v in engine.voices()}
    assert set(voices) == {*SPEAKERS, "grandma", "blip"}
    ana = voices["Ana Florence"]
    assert ana.sample_rate == RATE
    assert len(ana.languages) == 17
    assert {"en", "de", "zh_CN", "ja"} <= set(ana.languages)
    grandma = voices["grandma"]
    assert grandma.languages[0] == "de_DE", "the voice's default language comes first"
    assert "de" not in grandma.languages and "en" in grandma.languages
    assert len(grandma.languages) == 17
    assert grandma.installed
    assert not voices["blip"].installed
    assert "too short (0.5 s" in (voices["blip"].reason or "")


def test_long_sentence_streams_in_several_pieces(engine: XttsEngine) -> None:
    stream = engine.synthesize(SynthesisRequest(text=SENTENCE, voice="Ana Florence"))
    first = next(stream)  # audio exists before the sentence has been generated in full
    pieces = [first, *stream]
    assert len(pieces) > 1
    audio = _assert_audio(pieces)
    assert len(audio) / RATE > 0.1


def test_sampling_overrides_are_checked(engine: XttsEngine) -> None:
    options = {"temperature": 0.5, "top_k": 10, "top_p": 0.9, "repetition_penalty": 3.0}
    _assert_audio(_speak(engine, "Hello.", "Andrew Chipper", options=options, speed=1.5))
    with pytest.raises(InvalidRequestError, match="temperature"):
        _speak(engine, "Hello.", "Andrew Chipper", options={"temperature": 0})
    with pytest.raises(InvalidRequestError, match="unknown XTTS option 'beam'"):
        _speak(engine, "Hello.", "Andrew Chipper", options={"beam": 2})


@pytest.mark.parametrize(("language", "text"), [("ja", "こんにちは。"), ("zh_CN", "你好。")])
def test_chinese_and_japanese_front_ends(engine: XttsEngine, language: str, text: str) -> None:
    _assert_audio(_first_piece(engine, text, "Ana Florence", language=language))


# --- cloning -----------------------------------------------------------------------


def _computations(caplog: pytest.LogCaptureFixture) -> int:
    return sum("Computing XTTS conditioning for voice grandma" in r.message for r in caplog.records)


def test_conditioning_computed_once_per_voice(
    engine: XttsEngine, library: VoiceLibrary, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wyoming_polytts.engines.xtts.conditioning")
    cache_file = library.root / "grandma" / "cache" / "xtts" / CACHE_FILE

    _assert_audio(_first_piece(engine, "Hallo.", "grandma"))
    assert _computations(caplog) == 1
    written = cache_file.stat().st_mtime_ns

    _assert_audio(_first_piece(engine, "Hallo.", "grandma"))
    assert _computations(caplog) == 1, "second request recomputed the latents"

    engine.unload()  # memory cache gone: the disk cache must serve
    engine.load()
    _assert_audio(_first_piece(engine, "Hallo.", "grandma"))
    assert _computations(caplog) == 1, "the disk cache was not used after reloading"
    assert cache_file.stat().st_mtime_ns == written

    hand_made_voice(library, "grandma", 260.0, ["de_DE"])  # a new recording, same voice
    _assert_audio(_first_piece(engine, "Hallo.", "grandma"))
    assert _computations(caplog) == 2, "changed reference audio was not noticed"
    assert cache_file.stat().st_mtime_ns != written


def test_unknown_voice(engine: XttsEngine) -> None:
    with pytest.raises(VoiceNotFoundError, match="no voice 'nobody'"):
        _speak(engine, "Hello.", "nobody")


# --- language ----------------------------------------------------------------------


def test_language_detection_picks_german_and_english(engine: XttsEngine) -> None:
    assert engine.choose_language(None, None, GERMAN) == "de"
    assert engine.choose_language(None, None, ENGLISH) == "en"


def test_language_precedence(engine: XttsEngine) -> None:
    assert engine.choose_language("de_DE", "fr_FR", ENGLISH) == "de", "request first"
    assert engine.choose_language(None, "fr_FR", ENGLISH) == "fr", "then the voice's default"
    assert engine.choose_language("zh", None, ENGLISH) == "zh-cn"
    assert engine.choose_language(None, None, "123") == "en", "undetectable: config's language"
    with pytest.raises(InvalidRequestError, match="does not speak 'sv'"):
        engine.choose_language("sv", None, ENGLISH)


def test_accurate_detector() -> None:
    detector = LanguageDetector(["en", "de", "fr", "zh-cn"], accurate=True)
    assert detector.detect(GERMAN) == "de"
    assert detector.detect(ENGLISH) == "en"
    assert detector.detect("你好世界。今天天气很好。") == "zh-cn"
    assert detector.detect("OK.") is None


def test_language_codes() -> None:
    assert match_language("en-US", ["en", "de"]) == "en"
    assert match_language("ZH_cn", ["en", "zh-cn"]) == "zh-cn"
    assert match_language("sv", ["en", "de"]) is None
    assert locale_style("zh-cn") == "zh_CN"
    assert locale_style("de") == "de"


# --- weights -----------------------------------------------------------------------


def test_missing_weights_are_named(tmp_path: Path, monkeypatch, caplog) -> None:
    (tmp_path / "empty").mkdir()
    configured = XttsEngine(XttsOptions(checkpoint_dir="empty"), _context(tmp_path))
    with pytest.raises(EngineUnavailableError, match=r"lacks model\.pth, config\.json, vocab"):
        configured.load()
    assert configured.voices() == []

    cached = XttsEngine(XttsOptions(), _context(tmp_path))
    with pytest.raises(EngineUnavailableError, match="allow_download: true"):
        cached.load()

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    downloading = XttsEngine(XttsOptions(allow_download=True), _context(tmp_path))
    with pytest.raises(EngineUnavailableError, match=r"model\.pth.*coqui/XTTS-v2 failed"):
        downloading.load()
    assert "Coqui Public Model License" in caplog.text


# --- through the server --------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_xtts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    xtts = engine_config(tiny_xtts)
    config = {"default_voice": "Ana Florence", "engines": {"xtts": xtts}}
    process = ServerProcess(tmp_path_factory.mktemp("xtts-server"), config).start()
    yield process
    assert process.stop() == 0, process.log()


async def test_describe_lists_studio_speakers(server: ServerProcess) -> None:
    info = await describe(server.port)
    voices = {v.name: v for v in info.tts[0].voices}
    for name in SPEAKERS:
        assert voices[name].installed
        assert "en" in voices[name].languages and "de" in voices[name].languages
        assert voices[name].attribution.name == "Coqui"


async def test_error_mid_stream_reaches_client(server: ServerProcess) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        await client.write_event(Synthesize(text=f"Hello there. {TOO_LONG}").event())
        failed = await read_until(client, Speech(), "audio-stop")
        types = [e.type for e in failed.events]
        assert "audio-chunk" in types, "no audio before the failing sentence"
        assert types.index("audio-chunk") < types.index("error") < types.index("audio-stop")
        assert [e.code for e in failed.errors] == ["synthesis-failed"]
        assert "xtts" in failed.errors[0].text

        good = await synthesize(client, SENTENCE, "Andrew Chipper")
        assert not good.errors
        assert good.rate == RATE
        _assert_audio([good.samples])


# --- real weights on a GPU ---------------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["float32", "float16"])
def real_xtts(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[XttsEngine]:
    """Real weights on CUDA, in float32 and with the experimental ``half`` (which falls
    back to float32 by itself when float16 sampling fails)."""
    import torch

    folder = os.environ.get("XTTS_CHECKPOINT_DIR")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if not folder:
        pytest.skip("needs real XTTS-v2 weights: set XTTS_CHECKPOINT_DIR")
    options = XttsOptions(checkpoint_dir=folder, device="cuda", half=request.param)
    xtts = XttsEngine(options, _context(tmp_path))
    xtts.load()
    yield xtts
    xtts.unload()


@pytest.mark.gpu
def test_real_weights_speak_intelligibly(real_xtts: XttsEngine, transcriber) -> None:
    speaker = real_xtts.voices()[0].id
    pieces = _speak(real_xtts, ENGLISH, speaker)
    assert len(pieces) > 1
    transcriber.assert_says(np.concatenate(pieces), RATE, ENGLISH, max_wer=0.3)


@pytest.mark.gpu
def test_gpu_out_of_memory_fails_one_request(real_xtts: XttsEngine) -> None:
    import torch

    speaker = real_xtts.voices()[0].id
    hog = []
    for megabytes in (1024, 256, 64, 16, 4, 1):  # fill the GPU, leaving less than 1 MB
        try:
            while True:
                hog.append(torch.empty(megabytes << 20, dtype=torch.uint8, device="cuda"))
        except torch.cuda.OutOfMemoryError:
            continue
    with pytest.raises(SynthesisError, match="out of GPU memory"):
        _speak(real_xtts, ENGLISH, speaker)
    hog.clear()
    torch.cuda.empty_cache()
    _assert_audio(_speak(real_xtts, ENGLISH, speaker))

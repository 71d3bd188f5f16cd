"""One engine through the check: load it, speak the sentences, clone the recording.

Engines are driven directly (``load``, ``voices``, ``synthesize``), without the
pool, so every number is the engine's own: seconds to load, the memory the
load added (CUDA memory torch allocated, else resident memory), seconds to the
first piece of audio, the real-time factor (synthesis time over audio time)
and, for English with a transcriber, Whisper's word error rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..common.language import match_language
from ..engines.base import Engine, SynthesisRequest, VoiceInfo
from ..errors import PolyttsError
from ..pool.memory import LoadMeter
from .wer import word_error_rate

_LOGGER = logging.getLogger(__name__)

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The front door is locked and the lights in the kitchen are off.",
        "It is twenty one degrees inside, and rain is expected this evening.",
        "Good morning! Your first meeting starts at half past nine.",
    ),
    "zh": ("今天天气很好，我们下午三点去公园散步。",),  # noqa: RUF001
}
"""The fixed sentences, per language; each voice speaks those of its languages."""

CLONED_VOICE = "gpu-check"
"""Library name of the voice cloned from the Piper recording."""

Transcribe = Callable[[np.ndarray, int], str]


@dataclass
class Utterance:
    """One sentence spoken by one voice."""

    voice: str
    language: str
    text: str
    first_audio: float
    """Seconds from the request to its first piece of audio."""

    seconds: float
    """Seconds of audio."""

    rtf: float
    """Synthesis time over audio time (below 1 is faster than real time)."""

    wer: float | None = None
    heard: str | None = None


@dataclass
class EngineResult:
    """Everything measured for one engine; ``error`` set when it could not be checked."""

    name: str
    load_seconds: float | None = None
    memory: int | None = None
    memory_source: str | None = None
    utterances: list[Utterance] = field(default_factory=list)
    error: str | None = None


def check_engine(
    name: str,
    engine: Engine,
    transcribe: Transcribe | None,
    sentences: dict[str, tuple[str, ...]] = SENTENCES,
) -> EngineResult:
    """Load ``engine``, speak with its first voice and its cloned voice, unload it.

    Any failure is recorded in the result (a check reports; it does not stop).
    """
    result = EngineResult(name)
    meter = LoadMeter()
    started = time.perf_counter()
    try:
        engine.load()
    except Exception as err:  # whatever a library raises is the finding
        result.error = f"load failed: {_describe(err)}"
        return result
    result.load_seconds = time.perf_counter() - started
    result.memory = engine.memory_usage() or meter.added()
    result.memory_source = meter.source
    try:
        for voice in _voices(engine):
            for language, text in _sentences(voice, sentences):
                result.utterances.append(_speak(engine, voice, language, text, transcribe))
    except Exception as err:  # whatever a library raises is the finding
        result.error = f"synthesis failed: {_describe(err)}"
    finally:
        engine.unload()
    return result


def _voices(engine: Engine) -> list[VoiceInfo]:
    """The cloned voice where the engine clones, and its first own voice (English first)."""
    usable = [voice for voice in engine.voices() if voice.installed]
    cloned = [voice for voice in usable if voice.id == CLONED_VOICE]
    own = [voice for voice in usable if voice.id != CLONED_VOICE]
    english = [voice for voice in own if match_language("en", voice.languages)]
    return cloned + (english or own)[:1]


def _describe(err: Exception) -> str:
    return str(err) if isinstance(err, PolyttsError) else f"{type(err).__name__}: {err}"


def _sentences(voice: VoiceInfo, sentences: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    return [
        (language, text)
        for language, texts in sentences.items()
        if match_language(language, voice.languages)
        for text in texts
    ]


def _speak(
    engine: Engine, voice: VoiceInfo, language: str, text: str, transcribe: Transcribe | None
) -> Utterance:
    own = match_language(language, voice.languages) or language
    request = SynthesisRequest(text=text, voice=voice.id, language=own, first=True)
    started = time.perf_counter()
    first: float | None = None
    pieces = []
    for piece in engine.synthesize(request):
        if first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    elapsed = time.perf_counter() - started
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
    seconds = len(audio) / voice.sample_rate
    utterance = Utterance(
        voice=voice.id,
        language=language,
        text=text,
        first_audio=first if first is not None else elapsed,
        seconds=seconds,
        rtf=elapsed / seconds if seconds else float("inf"),
    )
    if transcribe is not None and language == "en" and audio.size:
        utterance.heard = transcribe(audio, voice.sample_rate)
        utterance.wer = word_error_rate(text, utterance.heard)
    _LOGGER.info("%s %s: %.2f s of audio, RTF %.2f", engine.name, voice.id, seconds, utterance.rtf)
    return utterance

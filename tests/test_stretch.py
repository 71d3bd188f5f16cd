"""Time-stretching for engines without native speed: duration scales, pitch stays."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import numpy as np
import pytest

from wyoming_polytts.common.text import split_sentences
from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import Capabilities, EngineContext
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.pool.metrics import FrontDoor
from wyoming_polytts.pool.pool import EnginePool
from wyoming_polytts.speech.catalog import Catalog
from wyoming_polytts.speech.stretch import TimeStretcher, atempo_factors
from wyoming_polytts.speech.synthesis import SpeechOptions, iterate, speak

from .test_openai import ANSWER

RATE = 22050


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def test_atempo_factors_stay_in_the_filters_range() -> None:
    assert atempo_factors(2.0) == [2.0]
    assert atempo_factors(0.25) == [0.5, 0.5]
    assert np.prod(atempo_factors(0.3)) == pytest.approx(0.3)
    assert all(0.5 <= f <= 100 for f in atempo_factors(0.3))


@pytest.mark.parametrize("speed", [0.25, 0.5, 1.5, 4.0])
def test_tone_keeps_its_pitch(speed: float) -> None:
    seconds = 2.0
    t = np.arange(int(RATE * seconds)) / RATE
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    stretcher = TimeStretcher(RATE, speed)
    pieces = [stretcher.process(tone[i : i + 4000]) for i in range(0, len(tone), 4000)]
    out = np.concatenate([*pieces, stretcher.flush()])
    assert out.dtype == np.int16
    assert len(out) / RATE == pytest.approx(seconds / speed, rel=0.05)
    assert _peak_hz(out, RATE) == pytest.approx(440.0, abs=5.0)
    assert any(len(p) for p in pieces), "nothing came out before the end of the stream"


class _PiperWithoutSpeed(PiperEngine):
    """The real Piper engine, declared as one that cannot change speed itself."""

    capabilities = Capabilities(native_speed=False)


async def test_speak_stretches_for_engines_without_native_speed(
    tmp_path: Path, transcriber
) -> None:
    context = EngineContext(cache_dir=tmp_path, voices_dir=tmp_path, threads=2, base_dir=tmp_path)
    pool = EnginePool({"piper": _PiperWithoutSpeed(PiperOptions(), context)}, queue_size=4)
    voice = Catalog(pool, DEFAULT_VOICE).resolve(None)

    async def say(speed: float | None) -> np.ndarray:
        sentences = iterate(split_sentences(ANSWER, 300))
        options = SpeechOptions(speed=speed)
        async with aclosing(
            speak(pool, voice, sentences, options, lookahead=2, front_door=FrontDoor.WYOMING)
        ) as pcm:
            return np.concatenate([piece async for piece in pcm])

    try:
        normal = await say(None)
        fast = await say(1.5)
    finally:
        await pool.close()
    assert 0.55 < len(fast) / len(normal) < 0.8
    transcriber.assert_says(fast, voice.info.sample_rate, ANSWER)

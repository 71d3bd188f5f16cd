"""A real, weightless model behind the GLM-TTS worker's seam, for CPU tests.

:class:`ToneModel` implements ``SpeechModel`` deterministically: a voice's
"prompt features" are the pitch of its recording (from zero crossings), and
each word becomes a tone at that pitch, 70 ms per character, yielded word by
word. It prints on loading, as GLM-TTS does, to prove prints never reach the
Wyoming pipe. The text "explode" makes it fail, to test error answers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from wyoming_polytts.workers.glm_tts_model import ModelSettings

SECONDS_PER_CHAR = 0.07


class ToneModel:
    """Tones at the voice's pitch; duration follows the text."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        print(
            f"tone model loaded: rate={settings.sample_rate} top_k={settings.top_k} "
            f"method={settings.sample_method} seed={settings.seed} phoneme={settings.use_phoneme}"
        )

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    def prompt(self, audio: np.ndarray, rate: int, transcript: str) -> float:
        return pitch_of(audio, rate)

    def synthesize(self, text: str, prompt: float) -> Iterator[np.ndarray]:
        if "explode" in text:
            raise RuntimeError("the tone model refuses to say 'explode'")
        for word in text.split():
            seconds = SECONDS_PER_CHAR * (len(word) + 1)
            t = np.arange(int(self.sample_rate * seconds)) / self.sample_rate
            yield (0.3 * np.sin(2 * np.pi * prompt * t)).astype(np.float32)


def pitch_of(audio: np.ndarray, rate: int) -> float:
    """The tone model's idea of a voice: its zero-crossing rate as a pitch, 80-400 Hz."""
    crossings = np.count_nonzero(np.diff(np.signbit(audio)))
    return float(np.clip(crossings / 2 / (len(audio) / rate), 80.0, 400.0))


def expected_seconds(text: str) -> float:
    """How long the tone model speaks ``text``."""
    return sum(SECONDS_PER_CHAR * (len(word) + 1) for word in text.split())

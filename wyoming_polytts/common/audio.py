"""PCM helpers shared by engines and front doors."""

from __future__ import annotations

import itertools

import numpy as np


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Mono int16 PCM from float samples in [-1, 1] (clipped) or from int16 as is."""
    if samples.dtype == np.int16:
        return samples.reshape(-1)
    scaled = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0) * 32767.0
    return scaled.astype(np.int16)


def frame_rms(audio: np.ndarray, frame: int) -> np.ndarray:
    """Root mean square of each whole ``frame``-sample frame (a shorter tail is left out)."""
    count = len(audio) // frame
    frames = np.asarray(audio[: count * frame], dtype=np.float64).reshape(count, frame)
    rms: np.ndarray = np.sqrt(np.mean(np.square(frames), axis=1))
    return rms


def shorten_silences(
    audio: np.ndarray,
    rate: int,
    edge_seconds: float,
    inner_seconds: float | None,
    threshold_dbfs: float = -50.0,
    *,
    tail_seconds: float | None = None,
) -> np.ndarray:
    """Leading and trailing silence cut to ``edge_seconds`` (trailing to ``tail_seconds``
    when given), and pauses inside longer than ``inner_seconds`` cut to that (None keeps
    them). Quieter than ``threshold_dbfs`` in 10 ms frames is silence; audio that is all
    silence is returned as it is."""
    frame = max(1, rate // 100)
    voiced = np.flatnonzero(frame_rms(audio, frame) >= 10 ** (threshold_dbfs / 20))
    if not voiced.size:
        return audio
    keep = np.zeros(len(audio), dtype=bool)
    lead = int(edge_seconds * rate)
    tail = int((edge_seconds if tail_seconds is None else tail_seconds) * rate)
    keep[max(0, int(voiced[0]) * frame - lead) : (int(voiced[-1]) + 1) * frame + tail] = True
    if inner_seconds is not None:
        longest = int(inner_seconds * rate)
        for before, after in itertools.pairwise(voiced):
            start, end = (int(before) + 1) * frame, int(after) * frame
            if end - start > longest:
                keep[start + longest // 2 : end - (longest - longest // 2)] = False
    return audio[keep]

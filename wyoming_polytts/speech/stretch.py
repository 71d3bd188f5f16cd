"""Speed changes that keep pitch, for engines that cannot change speed themselves.

FFmpeg's ``atempo`` filter (through PyAV, already used for encoding) stretches
a stream in time without changing its pitch. :func:`stretched` wraps one
sentence's pieces in the pool's worker thread: PCM comes out as soon as the
filter has produced it, so streaming is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction

import av
import numpy as np

_ATEMPO_MIN = 0.5
"""Slowest factor one ``atempo`` instance accepts; slower speeds chain several."""


def atempo_factors(speed: float) -> list[float]:
    """``atempo`` factors whose product is ``speed``, each within the filter's range."""
    factors = []
    while speed < _ATEMPO_MIN:
        factors.append(_ATEMPO_MIN)
        speed /= _ATEMPO_MIN
    return [*factors, speed]


class TimeStretcher:
    """Plays mono int16 PCM ``speed`` times faster (or slower), pitch unchanged."""

    def __init__(self, sample_rate: int, speed: float) -> None:
        self._rate = sample_rate
        self._graph = av.filter.Graph()
        source = self._graph.add_abuffer(
            format="s16", sample_rate=sample_rate, layout="mono", time_base=Fraction(1, sample_rate)
        )
        node = source
        for factor in atempo_factors(speed):
            stage = self._graph.add("atempo", f"{factor:.6f}")
            node.link_to(stage)
            node = stage
        sink = self._graph.add("abuffersink")
        node.link_to(sink)
        self._graph.configure()
        self._pts = 0

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Stretch the next piece; returns what the filter has ready (may be empty)."""
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += frame.samples
        self._graph.push(frame)
        return self._pull()

    def flush(self) -> np.ndarray:
        """End the stream; returns the audio the filter still held."""
        self._graph.push(None)
        return self._pull()

    def _pull(self) -> np.ndarray:
        pieces = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            pieces.append(frame.to_ndarray().reshape(-1))
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(pieces).astype(np.int16, copy=False)


def stretched(pieces: Iterable[np.ndarray], sample_rate: int, speed: float) -> Iterator[np.ndarray]:
    """The pieces played ``speed`` times faster (or slower), pitch unchanged."""
    stretcher = TimeStretcher(sample_rate, speed)
    for piece in pieces:
        out = stretcher.process(piece)
        if len(out):
            yield out
    tail = stretcher.flush()
    if len(tail):
        yield tail

"""Audio from an upstream as one stream needs it: 16-bit mono at one rate.

An upstream may answer in any PCM format of Wyoming (8, 16 or 32-bit samples,
several channels) and at a rate of its own, which may differ from the rate the
stream announced; soxr's streaming resampler converts without clicks between
pieces.
"""

from __future__ import annotations

import numpy as np
import soxr

from ...errors import SynthesisError
from .client import Audio


class Resampler:
    """Brings audio to one rate; a streaming soxr resampler per input rate."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._from: int | None = None
        self._stream: soxr.ResampleStream | None = None

    def convert(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        head = np.zeros(0, dtype=np.int16)
        if rate != self._from:  # the first piece, or the upstream changed its rate
            head = self.flush()
            self._from = rate
            if rate != self.rate:
                self._stream = soxr.ResampleStream(rate, self.rate, 1, dtype="int16")
        if self._stream is not None:
            pcm = np.asarray(self._stream.resample_chunk(pcm), dtype=np.int16)
        return np.concatenate([head, pcm]) if head.size else pcm

    def flush(self) -> np.ndarray:
        stream, self._stream, self._from = self._stream, None, None
        if stream is None:
            return np.zeros(0, dtype=np.int16)
        return np.asarray(stream.resample_chunk(np.zeros(0, np.int16), last=True), dtype=np.int16)


def mono_int16(audio: Audio) -> np.ndarray:
    """16-bit mono samples from 8, 16 or 32-bit PCM with any number of channels."""
    if audio.width not in (1, 2, 4) or audio.channels < 1:
        raise SynthesisError(
            f"the upstream sent audio of {audio.width}-byte samples in {audio.channels} channels"
        )
    frame = audio.width * audio.channels
    data = audio.data[: len(audio.data) - len(audio.data) % frame]
    if audio.width == 1:  # unsigned, centred on 128
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8
    elif audio.width == 2:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    else:
        samples = (np.frombuffer(data, dtype="<i4") >> 16).astype(np.int16)
    if audio.channels > 1:
        samples = samples.reshape(-1, audio.channels).mean(axis=1).astype(np.int16)
    return samples

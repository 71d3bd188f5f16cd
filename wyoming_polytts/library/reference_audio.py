"""Reference recordings for cloned voices: decode, check, trim, normalize.

Any container and codec PyAV (FFmpeg) can read is accepted, whatever the file
claims to be: FFmpeg probes the content, never a name or a declared type.
Decoding stops as soon as the audio exceeds what could still be valid, counted
in seconds of input before each frame is resampled, so a small file that
decodes to hours (or declares a tiny sample rate to be stretched into hours)
costs no more than the limit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..common.audio import frame_rms
from ..errors import InvalidAudioError, PayloadTooLargeError

_FRAME_SECONDS = 0.02
_SILENCE_DB = -40.0
"""Frames this far below the loudest frame count as silence when trimming."""

_SILENT_RMS = 10 ** (-50 / 20)
"""A recording whose loudest frame is quieter than this (-50 dBFS) is silent."""

_PAD_SECONDS = 0.1
_PEAK = 0.95

_RATES = (4_000, 384_000)
"""Sample rates (Hz) a recording may have; others are refused before resampling."""


@dataclass(frozen=True)
class AudioLimits:
    """Bounds a reference recording must meet."""

    rate: int
    """Hertz the recording is stored at."""

    min_seconds: float
    max_seconds: float
    max_bytes: int


def prepare_reference(data: bytes, limits: AudioLimits) -> np.ndarray:
    """Mono float32 speech at ``limits.rate``, silence trimmed and peak-normalized.

    Raises :class:`InvalidAudioError` (or :class:`PayloadTooLargeError`) with a
    message a person understands.
    """
    if not data:
        raise InvalidAudioError("the audio file is empty")
    if len(data) > limits.max_bytes:
        raise PayloadTooLargeError(
            f"the audio file is {len(data)} bytes; the limit is {limits.max_bytes} bytes"
        )
    audio = trim_silence(_decode(data, limits), limits.rate)
    seconds = len(audio) / limits.rate
    if seconds < limits.min_seconds:
        raise InvalidAudioError(
            f"too short: {seconds:.1f} s of speech, at least {limits.min_seconds:g} s needed"
        )
    if seconds > limits.max_seconds:
        raise InvalidAudioError(
            f"too long: {seconds:.1f} s of speech, at most {limits.max_seconds:g} s allowed"
        )
    peak = float(np.max(np.abs(audio)))
    return (audio * (_PEAK / peak)).astype(np.float32)


def _decode(data: bytes, limits: AudioLimits) -> np.ndarray:
    import av

    # Leading/trailing silence is trimmed later, so allow twice the limit before giving up.
    budget = 2 * limits.max_seconds
    pieces: list[np.ndarray] = []
    seconds = 0.0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise InvalidAudioError("the file holds no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=limits.rate)
            for frame in container.decode(stream):
                if not _RATES[0] <= frame.sample_rate <= _RATES[1]:
                    raise InvalidAudioError(
                        f"unsupported sample rate {frame.sample_rate} Hz "
                        f"(from {_RATES[0]} to {_RATES[1]} Hz)"
                    )
                seconds += frame.samples / frame.sample_rate
                if seconds > budget:
                    raise InvalidAudioError(f"too long: more than {budget:g} s of audio")
                pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except (av.FFmpegError, ValueError) as err:  # ValueError: e.g. a layout FFmpeg cannot mix
        raise InvalidAudioError(f"not a readable audio file ({err})") from err
    if not pieces:
        raise InvalidAudioError("the file holds no audio")
    audio = np.concatenate(pieces).astype(np.float32)
    if not np.isfinite(audio).all():
        raise InvalidAudioError("the audio holds invalid samples")
    return audio


def trim_silence(audio: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading and trailing silence, keeping a short pad; refuse a silent recording."""
    frame = max(1, int(_FRAME_SECONDS * rate))
    rms = frame_rms(audio, frame)
    if not rms.size:
        raise InvalidAudioError("the recording is silent")
    loudest = float(rms.max())
    if loudest < _SILENT_RMS:
        raise InvalidAudioError("the recording is silent")
    voiced = np.flatnonzero(rms >= loudest * 10 ** (_SILENCE_DB / 20))
    pad = int(_PAD_SECONDS * rate)
    start = max(0, int(voiced[0]) * frame - pad)
    end = min(len(audio), (int(voiced[-1]) + 1) * frame + pad)
    return audio[start:end]

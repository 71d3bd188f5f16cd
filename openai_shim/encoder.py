"""PCM into the six OpenAI response formats, in-process with PyAV, while it streams.

One :class:`AudioWriter` per response: PCM goes in piece by piece (resampled
with soxr where the format's rate differs from the voice's), is encoded and
muxed, and the bytes the muxer has written so far come back at once.

A *streamed* writer muxes into a write-only target, so muxers that would go
back to patch a header cannot: a WAV header then carries 0xFFFFFFFF sizes
(an open-ended stream) and a FLAC header an unknown length. A whole-body
writer muxes into memory and gets exact sizes, frame counts and durations.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field

import av
import numpy as np
import soxr

PCM_RATE = 24_000
"""Hertz of raw ``pcm`` responses, as OpenAI sends them."""

OPUS_RATE = 48_000
"""Hertz of ``opus`` responses: what every Opus decoder outputs, whatever the input was."""


@dataclass(frozen=True)
class AudioFormat:
    """How one ``response_format`` is encoded and labelled."""

    name: str
    container: str
    """FFmpeg muxer."""

    codec: str
    """FFmpeg encoder."""

    content_type: str
    bit_rate: int | None = None
    """Bits per second for lossy codecs; None for lossless ones."""

    fixed_rate: int | None = None
    """Hertz this format always has; None follows the voice."""

    codec_options: dict[str, str] = field(default_factory=dict)
    """Encoder options: the fast settings, as speech needs no more."""

    muxer_options: dict[str, str] = field(default_factory=dict)
    """Container options besides ``fflags``."""

    def output_rate(self, voice_rate: int, requested: int | None = None) -> int:
        """The response's sample rate: as requested, else fixed, else the voice's own
        when the codec takes it, else the nearest rate above it that the codec takes."""
        if requested is not None:
            return requested
        if self.fixed_rate is not None:
            return self.fixed_rate
        rates = sorted(av.Codec(self.codec, "w").audio_rates or ())
        if not rates or voice_rate in rates:
            return voice_rate
        return next((rate for rate in rates if rate > voice_rate), rates[-1])


FORMATS: dict[str, AudioFormat] = {
    fmt.name: fmt
    for fmt in (
        AudioFormat(
            "mp3",
            "mp3",
            "libmp3lame",
            "audio/mpeg",
            bit_rate=64_000,
            codec_options={"compression_level": "7"},  # LAME -q 7
        ),
        AudioFormat(
            "opus",
            "ogg",
            "libopus",
            "audio/ogg",
            bit_rate=32_000,
            fixed_rate=OPUS_RATE,
            codec_options={"compression_level": "5"},
            # Ogg pages of 0.1 s rather than 1 s: a sentence's audio leaves with the sentence.
            muxer_options={"page_duration": "100000"},
        ),
        AudioFormat(
            "aac", "adts", "aac", "audio/aac", bit_rate=64_000, codec_options={"aac_coder": "fast"}
        ),
        AudioFormat("flac", "flac", "flac", "audio/flac"),
        AudioFormat("wav", "wav", "pcm_s16le", "audio/wav"),
        AudioFormat("pcm", "s16le", "pcm_s16le", "audio/pcm", fixed_rate=PCM_RATE),
    )
}


class _Sink:
    """A write-only target: muxers cannot seek back, so they write streamable headers."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def drain(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class AudioWriter:
    """Encodes one response: :meth:`write` per PCM piece, :meth:`finish` once at the end.

    Blocking (the codec work): call it from a worker thread. :meth:`close` may come
    from another thread while one encodes (a request cancelled mid-sentence); it
    waits for that call, and later calls do nothing.
    """

    def __init__(self, fmt: AudioFormat, in_rate: int, out_rate: int, streamed: bool) -> None:
        self._rate = out_rate
        self._target: _Sink | io.BytesIO = _Sink() if streamed else io.BytesIO()
        self._container = av.open(
            self._target,
            mode="w",
            format=fmt.container,
            # No encoder tags: a WAV header stays the plain 44 bytes that naive readers expect.
            options={"fflags": "+bitexact", **fmt.muxer_options},
        )
        stream = self._container.add_stream(fmt.codec, rate=out_rate, options=fmt.codec_options)
        assert isinstance(stream, av.AudioStream)
        self._stream = stream
        self._stream.layout = "mono"
        if fmt.bit_rate is not None:
            self._stream.bit_rate = fmt.bit_rate
        self._resampler = None
        if in_rate != out_rate:
            self._resampler = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16")
        self._lock = threading.Lock()
        self._closed = False

    def write(self, pcm: np.ndarray) -> bytes:
        """Encode one piece of mono int16 PCM; return the bytes ready to send (maybe none)."""
        with self._lock:
            if self._closed:
                return b""
            if self._resampler is not None:
                pcm = self._resampler.resample_chunk(pcm)
            self._encode(pcm)
            return self._drain()

    def finish(self) -> bytes:
        """Flush the resampler and the encoder, write the trailer; return the last bytes
        (for a whole-body writer: the whole body)."""
        with self._lock:
            if self._closed:
                return b""
            if self._resampler is not None:
                self._encode(self._resampler.resample_chunk(np.zeros(0, np.int16), last=True))
            self._mux(self._stream.encode(None))
            self._closed = True
            self._container.close()
            if isinstance(self._target, io.BytesIO):
                return self._target.getvalue()
            return self._target.drain()

    def close(self) -> None:
        """Release the codec and container (after :meth:`finish`, or to abandon the response)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._container.close()

    def _encode(self, pcm: np.ndarray) -> None:
        if not len(pcm):
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self._rate
        self._mux(self._stream.encode(frame))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)

    def _drain(self) -> bytes:
        return self._target.drain() if isinstance(self._target, _Sink) else b""

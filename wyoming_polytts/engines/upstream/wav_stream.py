"""Audio bodies read as they arrive: raw PCM, or WAV whose header comes first.

A streamed WAV body from a speech server carries its header (RIFF, ``fmt ``,
then ``data``) before any sample, often with zero or ``0xFFFFFFFF`` sizes
because the length is unknown when it starts. :class:`WavStream` waits for the
header, then hands on the samples as they come; :class:`PcmStream` does the
same for headerless 16-bit mono at a known rate. Both keep a sample that a
network read split in two for the next read.
"""

from __future__ import annotations

import struct

import numpy as np

from ...errors import SynthesisError
from .client import Audio

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
"""``data`` sizes that mean "until the end" in a streamed WAV."""

MAX_HEADER = 1 << 16
"""Bytes of chunks before ``data`` accepted (``fmt `` plus any ``LIST`` metadata)."""


class PcmStream:
    """Headerless little-endian 16-bit mono samples at ``rate``."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._rest = b""

    def feed(self, data: bytes) -> list[Audio]:
        data = self._rest + data
        whole = len(data) - len(data) % 2
        self._rest = data[whole:]
        return [Audio(self.rate, 2, 1, data[:whole])] if whole else []

    def finish(self) -> None:
        """The body ended (a dangling half sample is dropped)."""


class WavStream:
    """A WAV body: its header first, then its samples as they arrive."""

    def __init__(self) -> None:
        self._buffer = b""
        self._format: tuple[int, int, int, int] | None = None
        """(format tag, channels, rate, bits per sample) once the header is complete."""

        self._left: int | None = None
        """Bytes of ``data`` still to come, when the header says; None: until the end."""

    def feed(self, data: bytes) -> list[Audio]:
        self._buffer += data
        if self._format is None and not self._read_header():
            return []
        assert self._format is not None
        tag, channels, rate, bits = self._format
        samples = self._buffer if self._left is None else self._buffer[: self._left]
        frame = channels * bits // 8
        whole = len(samples) - len(samples) % frame
        self._buffer = samples[whole:]  # what follows the declared data is dropped
        if self._left is not None:
            self._left -= whole
        if not whole:
            return []
        return [_audio(samples[:whole], tag, channels, rate, bits)]

    def finish(self) -> None:
        """The body ended: it must have had a complete header."""
        if self._format is None:
            raise SynthesisError("the upstream's WAV answer ended before its audio started")

    def _read_header(self) -> bool:
        """Parse the chunks up to ``data``; False while more bytes are needed."""
        buffer = self._buffer
        if len(buffer) < 12:
            return False
        if buffer[:4] != b"RIFF" or buffer[8:12] != b"WAVE":
            raise SynthesisError("the upstream's answer is not WAV audio")
        position, fmt = 12, None
        while True:
            if position + 8 > len(buffer):
                return self._more(buffer)
            name = buffer[position : position + 4]
            (size,) = struct.unpack_from("<I", buffer, position + 4)
            body = position + 8
            if name == b"data":
                if fmt is None:
                    raise SynthesisError("the upstream's WAV answer has no format chunk")
                self._format = fmt
                self._left = None if size in _UNKNOWN_SIZES else size
                self._buffer = buffer[body:]
                return True
            if body + size > len(buffer):
                return self._more(buffer)
            if name == b"fmt ":
                fmt = _format_chunk(buffer[body : body + size])
            position = body + size + size % 2  # chunks are padded to an even size

    @staticmethod
    def _more(buffer: bytes) -> bool:
        if len(buffer) > MAX_HEADER:
            raise SynthesisError(f"the upstream's WAV header is longer than {MAX_HEADER} bytes")
        return False


def _format_chunk(chunk: bytes) -> tuple[int, int, int, int]:
    if len(chunk) < 16:
        raise SynthesisError("the upstream's WAV format chunk is too short")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", chunk)
    if tag == _EXTENSIBLE and len(chunk) >= 26:
        (tag,) = struct.unpack_from("<H", chunk, 24)  # the sub-format GUID's first field
    supported = (tag == _PCM and bits in (8, 16, 24, 32)) or (tag == _FLOAT and bits == 32)
    if not supported or channels < 1 or rate < 1:
        raise SynthesisError(
            f"the upstream's WAV audio is in a format not supported here "
            f"(format {tag}, {bits} bits, {channels} channels, {rate} Hz)"
        )
    return tag, channels, rate, bits


def _audio(data: bytes, tag: int, channels: int, rate: int, bits: int) -> Audio:
    """8, 16 and 32-bit integer PCM as they are; 24-bit and float as 16-bit."""
    if tag == _FLOAT:
        floats = np.frombuffer(data, dtype="<f4")
        data = (np.clip(floats, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        bits = 16
    elif bits == 24:
        data = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)[:, 1:].tobytes()
        bits = 16
    return Audio(rate, bits // 8, channels, data)

"""Reads Wyoming events from a client within explicit limits.

An event is a JSON header line, then ``data_length`` bytes of JSON data, then
``payload_length`` bytes of payload. The ``wyoming`` library reads all three
without bounds; this reader bounds each part and the time an event may take
once its first byte has arrived, and checks the shape of what it decodes.

A violation raises :class:`BadEvent`, which says whether the stream is still in
sync: an oversized but well-framed data or payload section is read past and
discarded (the next event can be read), while a header that is too long, not
UTF-8 JSON, or without readable lengths leaves no way to find the next event,
so the connection must be closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event

from ..common.json_limits import decode_json
from ..config import WyomingSettings
from ..errors import InvalidRequestError, PayloadTooLargeError, PolyttsError

_SKIP_BYTES = 64 * 1024
"""Bytes discarded per read when skipping an oversized section."""

_MAX_TYPE_CHARS = 128

_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "synthesize": ("text",),
    "synthesize-chunk": ("text",),
}
"""Required text fields of the events this server acts on."""

_VOICE_EVENTS = frozenset({"synthesize", "synthesize-start"})
_VOICE_FIELDS = ("name", "language", "speaker")


@dataclass(frozen=True)
class ReaderLimits:
    """Bounds on one incoming event."""

    max_header_bytes: int
    """Longest header line, newline included."""

    max_data_bytes: int
    """Largest ``data_length`` (the JSON data section)."""

    max_payload_bytes: int
    """Largest ``payload_length``."""

    event_timeout: float
    """Seconds from an event's first byte until its last byte has arrived."""

    idle_timeout: float | None = None
    """Seconds a connection may stay silent, with no answer being sent; None: forever."""

    @classmethod
    def from_settings(cls, settings: WyomingSettings) -> ReaderLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_data_bytes=settings.max_data_bytes,
            max_payload_bytes=settings.max_payload_bytes,
            event_timeout=settings.event_timeout,
            idle_timeout=settings.idle_timeout,
        )


class BadEvent(Exception):
    """An event that breaks the limits or the protocol."""

    def __init__(self, error: PolyttsError, in_sync: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.in_sync = in_sync
        """True when the next event can still be read; False: close the connection."""


class IdleTimeout(Exception):
    """No event began within the idle timeout."""


class EventReader:
    """Reads one event at a time from ``reader`` (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, limits: ReaderLimits) -> None:
        self._reader = reader
        self._limits = limits

    async def read(self, busy: Callable[[], bool] = lambda: False) -> Event | None:
        """The next event; None when the client has closed its side (at any point).

        Raises :class:`BadEvent` for a violation, and :class:`IdleTimeout` when the
        client stays silent for the idle timeout while ``busy()`` (an answer still
        being sent) is false.
        """
        while True:
            try:
                async with asyncio.timeout(self._limits.idle_timeout):
                    first = await self._reader.readexactly(1)
                break
            except TimeoutError as err:
                if not busy():
                    raise IdleTimeout from err
            except asyncio.IncompleteReadError:
                return None
        timeout = self._limits.event_timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._read_event(first)
        except TimeoutError as err:
            raise BadEvent(
                InvalidRequestError(f"event not complete within {timeout:g} s"), in_sync=False
            ) from err
        except asyncio.IncompleteReadError:
            return None

    async def _read_event(self, first: bytes) -> Event:
        header = _header(await self._line(first))
        data_length = _length(header, "data_length")
        payload_length = _length(header, "payload_length")
        problem: PolyttsError | None = None
        data: dict[str, Any] = {}
        if data_length > self._limits.max_data_bytes:
            await self._skip(data_length)
            problem = PayloadTooLargeError(
                f"event data of {data_length} bytes; the limit is {self._limits.max_data_bytes}"
            )
        elif data_length:
            section = await self._reader.readexactly(data_length)
            try:
                data = _object(decode_json(section, "the event data"), "the event data")
            except InvalidRequestError as err:
                problem = err
        payload: bytes | None = None
        if payload_length > self._limits.max_payload_bytes:
            await self._skip(payload_length)
            problem = problem or PayloadTooLargeError(
                f"event payload of {payload_length} bytes; "
                f"the limit is {self._limits.max_payload_bytes}"
            )
        elif payload_length:
            payload = await self._reader.readexactly(payload_length)
        if problem is not None:
            raise BadEvent(problem, in_sync=True)
        try:
            event = Event(type=header["type"], data=_merged(header, data), payload=payload)
            check_shape(event)
        except InvalidRequestError as err:
            raise BadEvent(err, in_sync=True) from err
        return event

    async def _line(self, first: bytes) -> bytes:
        """The header line (after ``first``), read in pieces so its length stays bounded
        whatever the stream reader's own buffer limit is."""
        line = bytearray(first)
        limit = self._limits.max_header_bytes
        while not line.endswith(b"\n"):
            try:
                line += await self._reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as err:
                line += await self._reader.readexactly(err.consumed)
            if len(line) > limit:
                raise BadEvent(
                    PayloadTooLargeError(f"event header over the limit of {limit} bytes"),
                    in_sync=False,
                )
        return bytes(line)

    async def _skip(self, length: int) -> None:
        """Read past ``length`` bytes without keeping them."""
        while length > 0:
            length -= len(await self._reader.readexactly(min(length, _SKIP_BYTES)))


def check_shape(event: Event) -> None:
    """The fields this server reads have the types the protocol gives them."""
    for name in _TEXT_FIELDS.get(event.type, ()):
        if not isinstance(event.data.get(name), str):
            raise InvalidRequestError(f"{event.type}: '{name}' must be text")
    if event.type in _VOICE_EVENTS and (voice := event.data.get("voice")) is not None:
        if not isinstance(voice, dict):
            raise InvalidRequestError(f"{event.type}: 'voice' must be an object")
        for name in _VOICE_FIELDS:
            if not isinstance(voice.get(name, ""), str | None):
                raise InvalidRequestError(f"{event.type}: 'voice.{name}' must be text")


def _header(line: bytes) -> dict[str, Any]:
    """The decoded header; framing is lost when it cannot be read."""
    try:
        header = _object(decode_json(line, "the event header"), "the event header")
    except InvalidRequestError as err:
        raise BadEvent(err, in_sync=False) from err
    kind = header.get("type")
    if not isinstance(kind, str) or not 0 < len(kind) <= _MAX_TYPE_CHARS:
        raise BadEvent(
            InvalidRequestError(f"event header: 'type' must be text of 1-{_MAX_TYPE_CHARS} chars"),
            in_sync=False,
        )
    return header


def _length(header: dict[str, Any], name: str) -> int:
    value = header.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadEvent(
            InvalidRequestError(f"event header: '{name}' must be a whole number, 0 or more"),
            in_sync=False,
        )
    return value


def _merged(header: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Data given inline in the header, updated by the data section (as the library does)."""
    inline = header.get("data")
    if inline is None:
        return data
    return {**_object(inline, "the header's 'data'"), **data}


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{what} must be a JSON object")
    return value

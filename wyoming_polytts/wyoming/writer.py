"""Events to one Wyoming client: speech as audio events, errors, and a write timeout.

Writing waits while the client's socket buffer is full, so synthesis never runs
further ahead of what the client has read than the request's lookahead; a client
that reads nothing for the write timeout is disconnected, which ends its request
and frees its place in the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event

from ..const import CHANNELS, SAMPLE_WIDTH
from ..errors import PolyttsError

_LOGGER = logging.getLogger(__name__)


class ClientNotReading(ConnectionError):
    """The client did not read what was sent to it within the write timeout."""


class EventWriter:
    """Sends events to one client."""

    def __init__(self, writer: asyncio.StreamWriter, timeout: float, client: str) -> None:
        """``timeout``: seconds a client may read nothing while an event waits for it."""
        self._writer = writer
        self._timeout = timeout
        self._client = client

    async def write(self, event: Event) -> None:
        """Send one event; raises :class:`ClientNotReading` (and drops the client) when
        it has not been taken within the write timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                await async_write_event(event, self._writer)
        except TimeoutError as err:
            _LOGGER.info(
                "Dropping Wyoming client %s: it read nothing for %g s", self._client, self._timeout
            )
            self._writer.transport.abort()
            raise ClientNotReading(f"client read nothing for {self._timeout:g} s") from err

    async def error(self, err: PolyttsError) -> None:
        _LOGGER.info("Request failed (%s): %s", err.code, err)
        await self.write(Error(text=str(err), code=err.code).event())

    async def speech(self, pcm: AsyncIterator[np.ndarray], rate: int, step: int) -> None:
        """audio-start, the chunks of ``step`` samples, audio-stop: one format for the
        whole request. A failure before any audio is answered with the error alone; one
        after it with the error, then audio-stop."""
        audio_start = AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS).event()
        started = False
        try:
            async for piece in pcm:
                if not started:
                    await self.write(audio_start)
                    started = True
                for i in range(0, len(piece), step):
                    chunk = AudioChunk(
                        rate=rate,
                        width=SAMPLE_WIDTH,
                        channels=CHANNELS,
                        audio=piece[i : i + step].astype("<i2", copy=False).tobytes(),
                    )
                    await self.write(chunk.event())
        except PolyttsError as err:
            await self.error(err)
            if not started:
                return
        if not started:  # nothing audible (e.g. only punctuation): still a whole answer
            await self.write(audio_start)
        await self.write(AudioStop().event())

"""A Wyoming TTS server in the test's own event loop, for the Wyoming upstream engine
running in a Ray replica: a sentence with "forever" in it streams a tone until the
client goes away (which the test can await), any other half a second of it.

An answer that never ends by itself makes "a call is under way in the replica" a
fact rather than a race: the replica can be killed, or the request cancelled, while
it is certainly working.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import async_read_event, async_write_event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.tts import Synthesize

VOICE = "tone"
RATE = 16000
_PIECE = 320
"""Samples per audio chunk (20 ms)."""

_TONE = (3000 * np.sin(2 * np.pi * 220 * np.arange(_PIECE) / RATE)).astype("<i2").tobytes()
_ATTRIBUTION = Attribution(name="tests", url="https://example.invalid")
_INFO = Info(
    tts=[
        TtsProgram(
            name="scripted",
            attribution=_ATTRIBUTION,
            installed=True,
            description="scripted upstream",
            version=None,
            voices=[
                TtsVoice(
                    name=VOICE,
                    attribution=_ATTRIBUTION,
                    installed=True,
                    description="a tone",
                    version=None,
                    languages=["en_US"],
                )
            ],
        )
    ]
)


class ScriptedUpstream:
    """The server; ``endless`` is set while an endless answer streams, ``left`` once its
    client went away."""

    def __init__(self) -> None:
        self.endless = asyncio.Event()
        self.left = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def uri(self) -> str:
        assert self._server is not None
        return f"tcp://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def reset(self) -> None:
        """Forget the last endless answer."""
        self.endless.clear()
        self.left.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while (event := await async_read_event(reader)) is not None:
                if Describe.is_type(event.type):
                    await async_write_event(_INFO.event(), writer)
                elif Synthesize.is_type(event.type):
                    text = Synthesize.from_event(event).text
                    await async_write_event(AudioStart(RATE, 2, 1).event(), writer)
                    if "forever" in text:
                        await self._forever(reader, writer)
                        return
                    for _ in range(25):
                        await async_write_event(AudioChunk(RATE, 2, 1, _TONE).event(), writer)
                    await async_write_event(AudioStop().event(), writer)
        writer.close()

    async def _forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.endless.set()
        try:
            while not reader.at_eof():
                await async_write_event(AudioChunk(RATE, 2, 1, _TONE).event(), writer)
                await asyncio.sleep(0.02)
        finally:
            self.left.set()
            writer.close()

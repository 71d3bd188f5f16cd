"""The text of one Wyoming synthesize-start ... synthesize-stop stream, as sentences.

Chunks of text arrive as the client has them (Home Assistant forwards an LLM's reply
as it is written); complete sentences are handed on at once, the rest at the stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from wyoming.tts import SynthesizeVoice

from ..common.text import SentenceSplitter
from ..errors import InvalidRequestError, InvalidTextError, PolyttsError
from ..net.clients import Place
from ..speech.synthesis import check_text_length


@dataclass(frozen=True)
class StreamSettings:
    """Bounds on one stream."""

    max_chars: int
    """Longest text the whole stream may carry."""

    max_sentence_chars: int
    max_stream_seconds: float
    """Seconds the stream may stay open."""


class TextStream:
    """Text of one synthesize-start ... synthesize-stop stream, as sentences."""

    def __init__(
        self, voice: SynthesizeVoice | None, settings: StreamSettings, place: Place | None
    ) -> None:
        """``place`` is the client's stream place, given back when the stream's answer ends."""
        self.voice = voice
        self._place = place
        self.stopped = asyncio.Event()
        self._splitter = SentenceSplitter(settings.max_sentence_chars)
        self._sentences: asyncio.Queue[str | PolyttsError | None] = asyncio.Queue()
        self._max_chars = settings.max_chars
        self._chars = 0
        seconds = settings.max_stream_seconds
        self._expiry = asyncio.get_running_loop().call_later(
            seconds,
            self.fail,
            InvalidRequestError(f"stream still open after {seconds:g} s; ending it"),
        )

    def add(self, text: str) -> None:
        if self.stopped.is_set():
            return
        self._chars += len(text)
        try:
            check_text_length(self._chars, self._max_chars)
        except InvalidTextError as err:
            self.fail(err)
            return
        for sentence in self._splitter.add(text):
            self._sentences.put_nowait(sentence)

    def fail(self, err: PolyttsError) -> None:
        """End the stream with ``err`` (text over the limit, stream open too long)."""
        if not self.stopped.is_set():
            self._sentences.put_nowait(err)
            self.stop()

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self._expiry.cancel()
        for sentence in self._splitter.finish():
            self._sentences.put_nowait(sentence)
        self._sentences.put_nowait(None)
        self.stopped.set()

    def release(self) -> None:
        """Give the client's stream place back (once its answer has ended)."""
        if self._place is not None:
            self._place.release()

    async def sentences(self) -> AsyncIterator[str]:
        while (item := await self._sentences.get()) is not None:
            if isinstance(item, PolyttsError):
                raise item
            yield item

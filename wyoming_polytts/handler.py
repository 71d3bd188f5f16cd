"""The Wyoming front door: one handler per connection.

It translates events into requests on the catalog and pool and streams the
audio back. Synthesis runs in a task per request, so the connection keeps
reading events (and notices a client that leaves) while audio is produced.
Requests on one connection are answered in the order they arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from .catalog import Catalog, CatalogVoice
from .config import Config, WyomingSettings
from .const import CHANNELS, SAMPLE_WIDTH
from .errors import InvalidRequestError, InvalidTextError, PolyttsError
from .pool import EnginePool
from .shutdown import InFlight
from .synthesis import SpeechOptions, check_text_length, iterate, speak
from .text import SentenceSplitter, split_sentences
from .wyoming_info import build_info
from .wyoming_reader import BadEvent, EventReader, IdleTimeout, ReaderLimits

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandlerSettings:
    """What the Wyoming handler needs from the configuration."""

    max_chars: int
    max_sentence_chars: int
    samples_per_chunk: int
    lookahead: int
    limits: ReaderLimits = field(
        default_factory=lambda: ReaderLimits.from_settings(WyomingSettings())
    )
    """Bounds on each incoming event."""

    max_stream_seconds: float = WyomingSettings.max_stream_seconds
    """Seconds a synthesize-start ... synthesize-stop stream may stay open."""

    @classmethod
    def from_config(cls, config: Config) -> HandlerSettings:
        settings = config.settings
        return cls(
            max_chars=settings.text.max_chars,
            max_sentence_chars=settings.text.max_sentence_chars,
            samples_per_chunk=settings.wyoming.samples_per_chunk,
            lookahead=settings.pool.lookahead,
            limits=ReaderLimits.from_settings(settings.wyoming),
            max_stream_seconds=settings.wyoming.max_stream_seconds,
        )


class _TextStream:
    """Text of one synthesize-start ... synthesize-stop stream, as sentences."""

    def __init__(self, voice: SynthesizeVoice | None, settings: HandlerSettings) -> None:
        self.voice = voice
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

    async def sentences(self) -> AsyncIterator[str]:
        while (item := await self._sentences.get()) is not None:
            if isinstance(item, PolyttsError):
                raise item
            yield item


class TtsEventHandler(AsyncEventHandler):
    """Answers describe, synthesize and the streaming synthesize events."""

    def __init__(
        self,
        catalog: Catalog,
        pool: EnginePool,
        settings: HandlerSettings,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        in_flight: InFlight | None = None,
    ) -> None:
        """``in_flight`` collects the requests a shutdown lets finish."""
        super().__init__(reader, writer)
        self._catalog = catalog
        self._pool = pool
        self._settings = settings
        self._in_flight = in_flight
        self._stream: _TextStream | None = None
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Read events within the configured limits until the client leaves.

        A bad event is answered with an ``error`` event and logged as one warning;
        when the stream has lost its framing the connection is closed as well.
        """
        self._is_running = True
        events = EventReader(self.reader, self._settings.limits)
        try:
            while self._is_running:
                try:
                    event = await events.read(busy=self._busy)
                except BadEvent as bad:
                    peer = self.writer.get_extra_info("peername")
                    closing = "" if bad.in_sync else "; closing the connection"
                    _LOGGER.warning("Bad Wyoming event from %s: %s%s", peer, bad, closing)
                    await self.write_event(Error(text=str(bad), code=bad.error.code).event())
                    if bad.in_sync:
                        continue
                    break
                except IdleTimeout:
                    _LOGGER.info("Closing a Wyoming connection idle for too long")
                    break
                if event is None or not await self.handle_event(event):
                    break
        except ConnectionError:
            _LOGGER.debug("Client left")
        finally:
            await self.disconnect()
            self.writer.close()

    def _busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except (KeyError, TypeError, ValueError) as err:
            await self._send_error(InvalidRequestError(f"malformed {event.type} event: {err}"))
        return True

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(build_info(self._catalog).event())
        elif SynthesizeStart.is_type(event.type):
            self._start_stream(SynthesizeStart.from_event(event))
        elif SynthesizeChunk.is_type(event.type):
            if self._stream is not None:
                self._stream.add(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            if self._stream is not None:
                self._stream.stop()
                self._stream = None
        elif Synthesize.is_type(event.type):
            # Inside a stream, synthesize repeats the text for older servers: ignore it.
            if self._stream is None:
                synthesize = Synthesize.from_event(event)
                self._schedule(lambda: self._speak_once(synthesize))
        else:
            _LOGGER.debug("Ignoring event %s", event.type)

    async def disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # --- requests ---------------------------------------------------------

    def _schedule(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` after the connection's previous request has finished."""
        previous = self._task

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await work()
            except ConnectionError:
                _LOGGER.debug("Client left during synthesis")

        self._task = asyncio.create_task(run())
        if self._in_flight is not None:
            self._in_flight.add(self._task)

    def _start_stream(self, start: SynthesizeStart) -> None:
        if self._stream is not None:
            _LOGGER.warning("synthesize-start inside an open stream: ending the first stream")
            self._stream.stop()
        stream = _TextStream(start.voice, self._settings)
        self._stream = stream
        self._schedule(lambda: self._speak_stream(stream))

    async def _speak_stream(self, stream: _TextStream) -> None:
        try:
            voice, options = self._resolve(stream.voice)
            await self._send_speech(voice, stream.sentences(), options)
        except PolyttsError as err:
            await self._send_error(err)
        await stream.stopped.wait()
        await self.write_event(SynthesizeStopped().event())

    async def _speak_once(self, synthesize: Synthesize) -> None:
        try:
            if not synthesize.text.strip():
                raise InvalidTextError("no text to speak")
            check_text_length(len(synthesize.text), self._settings.max_chars)
            voice, options = self._resolve(synthesize.voice)
            sentences = split_sentences(synthesize.text, self._settings.max_sentence_chars)
            await self._send_speech(voice, iterate(sentences), options)
        except PolyttsError as err:
            await self._send_error(err)

    def _resolve(self, voice: SynthesizeVoice | None) -> tuple[CatalogVoice, SpeechOptions]:
        name = voice.name if voice is not None else None
        options = SpeechOptions(
            speaker=voice.speaker if voice is not None else None,
            language=voice.language if voice is not None else None,
        )
        return self._catalog.resolve(name), options

    async def _send_speech(
        self, voice: CatalogVoice, sentences: AsyncIterator[str], options: SpeechOptions
    ) -> None:
        """audio-start, the chunks, audio-stop: one format for the whole request."""
        rate = voice.info.sample_rate
        step = self._settings.samples_per_chunk
        audio_start = AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS).event()
        started = False
        try:
            async with aclosing(
                speak(
                    self._pool,
                    voice,
                    sentences,
                    options,
                    self._settings.lookahead,
                    front_door="wyoming",
                )
            ) as pcm:
                async for piece in pcm:
                    if not started:
                        await self.write_event(audio_start)
                        started = True
                    for i in range(0, len(piece), step):
                        chunk = AudioChunk(
                            rate=rate,
                            width=SAMPLE_WIDTH,
                            channels=CHANNELS,
                            audio=piece[i : i + step].astype("<i2", copy=False).tobytes(),
                        )
                        await self.write_event(chunk.event())
        except PolyttsError as err:
            await self._send_error(err)
            if not started:
                return
        if not started:  # nothing audible (e.g. only punctuation): still a whole answer
            await self.write_event(audio_start)
        await self.write_event(AudioStop().event())

    async def _send_error(self, err: PolyttsError) -> None:
        _LOGGER.info("Request failed (%s): %s", err.code, err)
        await self.write_event(Error(text=str(err), code=err.code).event())

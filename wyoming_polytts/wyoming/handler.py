"""The Wyoming front door: one handler per connection.

It translates events into requests on the catalog and pool and streams the
audio back. Requests on one connection are answered in the order they arrived,
by one task, while the connection keeps reading events (and notices a client
that leaves). At most :data:`_MAX_WAITING` requests wait behind the one being
answered; the client's next events are read only once one has started, so a
pipelining client cannot pile up work. Events go out through
:class:`~.wyoming_writer.EventWriter`, which drops a client that does not read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from ..common.text import split_sentences
from ..config import Config, LimitsSettings, WyomingSettings
from ..errors import (
    InvalidRequestError,
    InvalidTextError,
    PolyttsError,
    ServerShuttingDownError,
    SynthesisError,
)
from ..net.clients import Clients
from ..pool.metrics import FrontDoor
from ..pool.pool import EnginePool
from ..speech.catalog import Catalog, CatalogVoice
from ..speech.synthesis import SpeechOptions, check_text_length, iterate, speak
from .info import build_info
from .reader import BadEvent, EventReader, IdleTimeout, ReaderLimits
from .stream import StreamSettings, TextStream
from .writer import EventWriter

_LOGGER = logging.getLogger(__name__)

_MAX_WAITING = 1
"""Requests of one connection that may wait while another is answered."""

Work = Callable[[], Awaitable[None]]


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

    write_timeout: float = LimitsSettings.write_timeout
    """Seconds a client may go without reading the audio sent to it."""

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
            write_timeout=settings.limits.write_timeout,
        )

    @property
    def stream(self) -> StreamSettings:
        return StreamSettings(self.max_chars, self.max_sentence_chars, self.max_stream_seconds)


class TtsEventHandler:
    """Answers describe, synthesize and the streaming synthesize events of one connection."""

    def __init__(
        self,
        catalog: Catalog,
        pool: EnginePool,
        settings: HandlerSettings,
        clients: Clients,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
    ) -> None:
        """``client`` is the address the connection counts under (see :mod:`.clients`)."""
        self._catalog = catalog
        self._pool = pool
        self._settings = settings
        self._clients = clients
        self._reader = reader
        self._writer = writer
        self._out = EventWriter(writer, settings.write_timeout, client)
        self._client = client
        self._waiting: asyncio.Queue[Work] = asyncio.Queue(_MAX_WAITING)
        self._answering = False
        self._stream: TextStream | None = None
        """The stream whose synthesize-stop has not arrived yet."""

        self._streams: set[TextStream] = set()
        """Streams not answered in full yet (each holds a place of the client's)."""

    async def run(self) -> None:
        """Read events within the configured limits until the client leaves.

        A bad event is answered with an ``error`` event and logged as one warning;
        when the stream has lost its framing the connection is closed as well.
        """
        answering = asyncio.create_task(self._answer_requests())
        events = EventReader(self._reader, self._settings.limits)
        try:
            while not answering.done():
                try:
                    event = await events.read(busy=self._busy)
                except BadEvent as bad:
                    closing = "" if bad.in_sync else "; closing the connection"
                    _LOGGER.warning("Bad Wyoming event from %s: %s%s", self._client, bad, closing)
                    await self._out.write(Error(text=str(bad), code=bad.error.code).event())
                    if bad.in_sync:
                        continue
                    break
                except IdleTimeout:
                    _LOGGER.info("Closing a Wyoming connection idle for too long")
                    break
                if event is None:
                    break
                await self._handle(event, answering)
        except ConnectionError:
            _LOGGER.debug("Client %s left", self._client)
        finally:
            answering.cancel()
            for stream in self._streams:
                stream.release()
            self._writer.close()

    def close(self) -> None:
        """End the connection (the server is stopping): :meth:`run` returns soon after."""
        self._writer.close()

    def _busy(self) -> bool:
        return self._answering or self._stream is not None or not self._waiting.empty()

    async def _handle(self, event: Event, answering: asyncio.Task[None]) -> None:
        try:
            await self._dispatch(event, answering)
        except (KeyError, TypeError, ValueError) as err:
            await self._send_error(InvalidRequestError(f"malformed {event.type} event: {err}"))

    async def _dispatch(self, event: Event, answering: asyncio.Task[None]) -> None:
        if Describe.is_type(event.type):
            await self._out.write(build_info(self._catalog.refresh()).event())
        elif SynthesizeStart.is_type(event.type):
            stream = self._open_stream(SynthesizeStart.from_event(event).voice)
            await self._enqueue(lambda: self._speak_stream(stream), answering)
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
                await self._enqueue(lambda: self._speak_once(synthesize), answering)
        else:
            _LOGGER.debug("Ignoring event %s", event.type)

    # --- requests ---------------------------------------------------------

    async def _enqueue(self, work: Work, answering: asyncio.Task[None]) -> None:
        """Queue ``work`` behind the connection's requests; waits (reading nothing more)
        while the queue is full. Raises ConnectionError if the connection ends meanwhile."""
        if not self._waiting.full():
            self._waiting.put_nowait(work)
            return
        put = asyncio.ensure_future(self._waiting.put(work))
        await asyncio.wait({put, answering}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            raise ConnectionError("the connection ended")

    async def _answer_requests(self) -> None:
        """Answer queued requests one after another, for as long as the client listens."""
        in_flight = self._clients.in_flight
        while True:
            work = await self._waiting.get()
            self._answering = True
            try:
                with in_flight.request():
                    try:
                        with in_flight.cut_off_as_error():
                            await work()
                    except PolyttsError as err:  # cut off by a shutdown
                        await self._send_error(err)
                        return
            except ConnectionError:
                _LOGGER.debug("Client %s left during synthesis", self._client)
                return
            except Exception:  # a bug must reach the client as an error, not drop it
                _LOGGER.exception("Wyoming request from %s failed", self._client)
                await self._send_error(SynthesisError("internal error; see the server log"))
            finally:
                self._answering = False

    def _open_stream(self, voice: SynthesizeVoice | None) -> TextStream:
        """A new stream for synthesize-start; over the client's stream limit, one that
        fails at once (answered with the error, then synthesize-stopped)."""
        if self._stream is not None:
            _LOGGER.warning("synthesize-start inside an open stream: ending the first stream")
            self._stream.stop()
        try:
            place = self._clients.streams.take(self._client)
        except PolyttsError as err:
            stream = TextStream(voice, self._settings.stream, None)
            stream.fail(err)
        else:
            stream = TextStream(voice, self._settings.stream, place)
        self._stream = stream
        self._streams.add(stream)
        return stream

    async def _speak_stream(self, stream: TextStream) -> None:
        """Speak the stream's sentences as they come; end with synthesize-stopped once the
        client has stopped the stream, or at once when the server cuts it off."""
        try:
            try:
                with self._clients.in_flight.cut_off_as_error():
                    try:
                        voice, options = self._resolve(stream.voice)
                        await self._send_speech(voice, stream.sentences(), options)
                    except PolyttsError as err:
                        await self._send_error(err)
                    await stream.stopped.wait()
            except ServerShuttingDownError as err:
                await self._send_error(err)
            await self._out.write(SynthesizeStopped().event())
        finally:
            stream.release()
            self._streams.discard(stream)

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
        pcm = speak(
            self._pool,
            voice,
            sentences,
            options,
            self._settings.lookahead,
            front_door=FrontDoor.WYOMING,
        )
        async with aclosing(pcm):
            await self._out.speech(pcm, voice.info.sample_rate, self._settings.samples_per_chunk)

    async def _send_error(self, err: PolyttsError) -> None:
        await self._out.error(err)

"""The client side of a Wyoming upstream: a private event loop, conversations, synthesis.

Engines are blocking (the pool runs ``synthesize`` in a worker thread) while the
``wyoming`` library is asyncio. An upstream engine therefore talks to its
upstream on a private event loop in a thread of its own (:class:`LoopThread`),
and :class:`PieceStream` hands what arrives there to the worker thread as soon
as it arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from wyoming.audio import AudioChunk, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import TtsVoice
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from ...common.describe import request_info
from ...errors import (
    EngineUnavailableError,
    InvalidRequestError,
    InvalidTextError,
    PolyttsError,
    ServerBusyError,
    SynthesisError,
    VoiceNotFoundError,
)

T = TypeVar("T")

_ERRORS: dict[str, type[PolyttsError]] = {
    cls.code: cls
    for cls in (
        VoiceNotFoundError,
        InvalidTextError,
        InvalidRequestError,
        ServerBusyError,
        EngineUnavailableError,
    )
}
"""Error codes an upstream (another wyoming-polytts, the GLM-TTS worker) may send."""


class UpstreamClosedError(Exception):
    """The upstream closed the connection, or its process exited."""


class LoopThread:
    """An asyncio event loop running in a daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the loop (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result (from another thread)."""
        return self.submit(coroutine).result()

    def stop(self) -> None:
        """Stop the loop, cancelling what still runs on it, and wait for the thread."""
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@dataclass
class Conversation:
    """Wyoming events to and from one upstream connection; each read is bounded."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timeout: float
    """Seconds to wait for the next event."""

    async def read(self) -> Event:
        try:
            event = await asyncio.wait_for(async_read_event(self.reader), self.timeout)
        except asyncio.IncompleteReadError as err:  # cut off inside an event
            raise UpstreamClosedError("the upstream closed the connection") from err
        if event is None:
            raise UpstreamClosedError("the upstream closed the connection")
        return event

    async def write(self, event: Event) -> None:
        await async_write_event(event, self.writer)


@dataclass(frozen=True)
class UpstreamInfo:
    """What an upstream's ``info`` says about its TTS programs, merged."""

    voices: list[TtsVoice]
    streaming: bool
    """Every TTS program supports synthesize-start/chunk/stop."""


@dataclass(frozen=True)
class Audio:
    """One ``audio-chunk`` as the upstream sent it."""

    rate: int
    """Hertz"""

    width: int
    """Bytes per sample"""

    channels: int
    data: bytes


async def describe(conversation: Conversation) -> UpstreamInfo:
    """Ask for ``info``; voices of all installed TTS programs (first name wins)."""
    info = await request_info(conversation.read, conversation.write)
    programs = [p for p in info.tts if p.installed]
    if not programs:
        raise SynthesisError("the upstream offers no installed TTS program")
    voices: dict[str, TtsVoice] = {}
    for program in programs:
        for voice in program.voices:
            voices.setdefault(voice.name, voice)
    streaming = all(p.supports_synthesize_streaming for p in programs)
    return UpstreamInfo(list(voices.values()), streaming)


async def synthesize(
    conversation: Conversation,
    text: str,
    voice: SynthesizeVoice,
    streaming: bool,
    resync: bool,
    label: str,
) -> AsyncGenerator[Audio, None]:
    """Send one sentence and yield its audio as it arrives, until the answer ends.

    With ``streaming`` the sentence goes as a synthesize-start/chunk/stop stream
    (the answer ends with synthesize-stopped), else as one synthesize (ending
    with audio-stop). An ``error`` event is raised as the matching
    :class:`PolyttsError`; with ``resync`` (a connection that is used again) a
    describe round trip first skips whatever the upstream still sends for this
    request.
    """
    end = SynthesizeStopped if streaming else AudioStop
    if streaming:
        await conversation.write(SynthesizeStart(voice=voice).event())
        await conversation.write(SynthesizeChunk(text=text).event())
        await conversation.write(Synthesize(text=text, voice=voice).event())
        await conversation.write(SynthesizeStop().event())
    else:
        await conversation.write(Synthesize(text=text, voice=voice).event())
    while True:
        event = await conversation.read()
        if AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            yield Audio(chunk.rate, chunk.width, chunk.channels, chunk.audio)
        elif end.is_type(event.type):
            return
        elif Error.is_type(event.type):
            error = Error.from_event(event)
            failure = _ERRORS.get(error.code or "", SynthesisError)(f"{label}: {error.text}")
            if resync:
                try:
                    await describe(conversation)
                except (UpstreamClosedError, TimeoutError, OSError) as err:
                    raise failure from err  # it died or hangs: its supervisor takes over
            raise failure


def request_failure(label: str, err: BaseException, timeout: float) -> PolyttsError:
    """A client-facing error for a conversation that broke off."""
    if isinstance(err, PolyttsError):
        return err
    if isinstance(err, TimeoutError):
        return SynthesisError(f"upstream {label} sent nothing for {timeout:g} s")
    if isinstance(err, UpstreamClosedError):
        return SynthesisError(f"upstream {label} closed the connection during the request")
    return EngineUnavailableError(f"connection to upstream {label} failed: {err}")


Producer = Callable[[Callable[[T], None], threading.Event], Coroutine[Any, Any, None]]
"""A coroutine that hands items to a callback and stops early once the event is set."""


class _End:
    """Marks the end of a :class:`PieceStream`."""


class PieceStream(Generic[T]):
    """Blocking iteration, in a worker thread, over items a coroutine on a LoopThread produces."""

    def __init__(self, loop: LoopThread, produce: Producer[T], cancel_on_close: bool) -> None:
        self._items: queue.SimpleQueue[T | BaseException | _End] = queue.SimpleQueue()
        self._abandoned = threading.Event()
        self._cancel_on_close = cancel_on_close
        try:
            self._future = loop.submit(self._produce(produce))
        except RuntimeError as err:  # the loop has been stopped: the engine is unloaded
            raise EngineUnavailableError("the upstream engine is not loaded") from err

    async def _produce(self, produce: Producer[T]) -> None:
        try:
            await produce(self._items.put, self._abandoned)
        except asyncio.CancelledError:
            self._items.put(EngineUnavailableError("the upstream connection was closed"))
            raise
        except Exception as err:  # handed to the worker thread, which raises it
            self._items.put(err)
        else:
            self._items.put(_End())

    def __iter__(self) -> Iterator[T]:
        while not isinstance(item := self._items.get(), _End):
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop producing: the coroutine either is cancelled or drains its answer."""
        self._abandoned.set()
        if self._cancel_on_close:
            self._future.cancel()

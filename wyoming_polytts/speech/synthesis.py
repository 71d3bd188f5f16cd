"""One request's speech: sentences in, ordered PCM out, through the pool.

Both front doors use :func:`speak`. Sentences are submitted to the engine as
they arrive, up to ``lookahead`` ahead of the one being sent, and their audio
is yielded strictly in order. Every request is measured here (the pool's
metrics), labelled with the front door it came through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np

from ..engines.base import SynthesisRequest
from ..errors import InvalidTextError, PolyttsError
from ..pool.jobs import Job
from ..pool.metrics import FrontDoor, RequestMetrics
from ..pool.pool import EnginePool
from .catalog import CatalogVoice
from .stretch import stretched

T = TypeVar("T")


@dataclass(frozen=True)
class SpeechOptions:
    """Per-request choices besides the text; None means the voice's or engine's default."""

    speaker: str | None = None
    language: str | None = None
    speed: float | None = None
    engine_options: Mapping[str, Any] = field(default_factory=dict)


def check_text_length(length: int, limit: int) -> None:
    """Refuse text beyond the configured limit."""
    if length > limit:
        raise InvalidTextError(f"text too long: {length} characters, the limit is {limit}")


async def speak(
    pool: EnginePool,
    voice: CatalogVoice,
    sentences: AsyncIterable[str],
    options: SpeechOptions,
    lookahead: int,
    *,
    front_door: FrontDoor,
) -> AsyncGenerator[np.ndarray, None]:
    """Yield the PCM of ``sentences`` in order, at ``voice.info.sample_rate``.

    ``options.speed`` goes to engines that apply speed natively; for the others
    the audio is time-stretched in the worker thread, pitch unchanged.
    Raises :class:`InvalidTextError` when the sentences carry nothing to speak, and
    :class:`InvalidRequestError` for engine options the voice's engine does not take.
    Close the generator (``contextlib.aclosing``) to cancel pending work.
    ``front_door`` labels the request in the metrics.
    """
    measured = pool.metrics.request(voice.engine, front_door)
    outcome = "error"
    try:
        pcm = _speak(pool, voice, sentences, options, lookahead, measured)
        async with aclosing(pcm):
            async for piece in pcm:
                measured.audio()
                yield piece
        outcome = "ok"
    except PolyttsError as err:
        outcome = err.code
        raise
    except (GeneratorExit, asyncio.CancelledError):
        outcome = "cancelled"
        raise
    finally:
        measured.finish(outcome)


async def _speak(
    pool: EnginePool,
    voice: CatalogVoice,
    sentences: AsyncIterable[str],
    options: SpeechOptions,
    lookahead: int,
    measured: RequestMetrics,
) -> AsyncGenerator[np.ndarray, None]:
    engine = pool.engines[voice.engine]
    engine_options = engine.check_options(options.engine_options)
    native_speed = engine.capabilities.native_speed
    transform = None
    if options.speed not in (None, 1.0) and not native_speed:
        transform = partial(stretched, sample_rate=voice.info.sample_rate, speed=options.speed)
    # A request takes its place in the pool only once it has text to speak: a stream
    # that is still waiting for its first sentence holds no engine slot and no queue place.
    text = aiter(sentences)
    first = await anext(text, None)
    if first is None:
        raise InvalidTextError("no text to speak")
    async with pool.session(voice.engine) as session:
        jobs: asyncio.Queue[Job | BaseException | None] = asyncio.Queue()
        slots = asyncio.Semaphore(lookahead + 1)

        async def submit_all() -> None:
            position = 0
            try:
                async for sentence in prepend(first, text):
                    await slots.acquire()
                    request = SynthesisRequest(
                        text=sentence,
                        voice=voice.info.id,
                        speaker=options.speaker,
                        language=options.language,
                        speed=options.speed if native_speed else None,
                        options=engine_options,
                        sample_rate=voice.info.sample_rate,
                        first=position == 0,
                    )
                    jobs.put_nowait(session.submit(request, position, transform))
                    position += 1
            except Exception as err:
                jobs.put_nowait(err)
            else:
                jobs.put_nowait(None)

        producer = asyncio.create_task(submit_all())
        try:
            while (job := await jobs.get()) is not None:
                if isinstance(job, BaseException):
                    raise job
                samples = 0
                async for piece in job.pieces():
                    samples += len(piece)
                    yield piece
                measured.sentence(job.elapsed, samples / voice.info.sample_rate)
                slots.release()
        finally:
            producer.cancel()


async def prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """``first``, then the items of ``rest``."""
    yield first
    async for item in rest:
        yield item


async def iterate(items: list[str]) -> AsyncIterator[str]:
    """An async source over sentences already known."""
    for item in items:
        yield item

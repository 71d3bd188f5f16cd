"""``POST /v1/audio/speech``: check, resolve, synthesize, encode, stream.

Everything is checked, and the first sentence synthesized, before the response
starts, so every error until then gets its proper status. Then:

- ``stream_format: audio`` (the default): the encoded audio with chunked
  transfer, each sentence as soon as it is synthesized; streamed headers.
- ``stream: false``: the whole body at once, with Content-Length and exact
  sizes in its headers.
- ``stream_format: sse``: ``speech.audio.delta`` events carrying the encoded
  audio in base64, then ``speech.audio.done``.

A client that leaves mid-stream stops the synthesis: aiohttp cancels the
handler, or the next write fails, and closing :func:`speak` cancels the pool work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, closing, contextmanager
from typing import Any

import numpy as np
from aiohttp import hdrs, web

from wyoming_polytts.common.text import split_sentences
from wyoming_polytts.errors import InvalidTextError, PolyttsError
from wyoming_polytts.pool.metrics import FrontDoor
from wyoming_polytts.speech.synthesis import SpeechOptions, iterate, prepend, speak

from . import sse
from .body import read_json
from .encoder import FORMATS, AudioWriter
from .errors import ApiError
from .request import parse_speech_request
from .state import IN_FLIGHT, POOL, RESOLVER, SETTINGS

_LOGGER = logging.getLogger(__name__)

_SLICE_SECONDS = 0.25
"""Audio encoded per step: the first bytes of a sentence leave after this much is encoded."""


async def create_speech(request: web.Request) -> web.StreamResponse:
    """Answer one speech request, counted in flight so that a shutdown lets it finish
    (and then cuts it off with a ``server_shutting_down`` error)."""
    in_flight = request.app[IN_FLIGHT]
    with in_flight.request(), in_flight.cut_off_as_error():
        return await _speech(request)


async def _speech(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    speech = parse_speech_request(await _read_json(request), settings.max_input_chars)
    voice = request.app[RESOLVER].resolve(speech.model, speech.voice)
    sentences = split_sentences(speech.input, settings.max_sentence_chars)
    if not sentences:
        raise InvalidTextError("'input' has nothing to speak")
    fmt = FORMATS[speech.response_format]
    options = SpeechOptions(
        language=speech.language, speed=speech.speed, engine_options=speech.engine_options
    )
    pcm = speak(
        request.app[POOL],
        voice,
        iterate(sentences),
        options,
        settings.lookahead,
        front_door=FrontDoor.OPENAI,
    )
    async with aclosing(pcm):
        first = await anext(pcm, None)
        if first is None:  # e.g. only symbols the voice does not pronounce
            raise InvalidTextError(f"'input' has nothing voice '{voice.name}' can speak")
        rate = voice.info.sample_rate
        out_rate = fmt.output_rate(rate, speech.sample_rate)
        streamed = speech.stream or speech.stream_format == "sse"
        with closing(AudioWriter(fmt, rate, out_rate, streamed)) as writer:
            slice_samples = int(rate * _SLICE_SECONDS)
            async with aclosing(_encoded(writer, prepend(first, pcm), slice_samples)) as audio:
                if speech.stream_format == "sse":
                    return await _send_events(request, audio)
                if not speech.stream:
                    body = b"".join([chunk async for chunk in audio])
                    return web.Response(body=body, content_type=fmt.content_type)
                return await _send_audio(request, audio, fmt.content_type)


async def _read_json(request: web.Request) -> Any:
    """The decoded body (see :func:`.body.read_json` for its limits)."""
    return await read_json(request, request.app[SETTINGS].max_body_bytes)


async def _encoded(
    writer: AudioWriter, pcm: AsyncIterator[np.ndarray], slice_samples: int
) -> AsyncGenerator[bytes, None]:
    """Encoded bytes as the encoder releases them, ending with the trailer.

    Each piece is encoded in slices of ``slice_samples`` whose bytes leave at once, so
    a sentence's first bytes need not wait for the whole sentence to be encoded.
    Encoding runs in a worker thread, so it never stalls the event loop.
    """
    async for piece in pcm:
        for start in range(0, len(piece), slice_samples):
            chunk = await asyncio.to_thread(writer.write, piece[start : start + slice_samples])
            if chunk:
                yield chunk
    chunk = await asyncio.to_thread(writer.finish)
    if chunk:
        yield chunk


async def _send_audio(
    request: web.Request, audio: AsyncGenerator[bytes, None], content_type: str
) -> web.StreamResponse:
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: content_type})
    response.enable_chunked_encoding()
    await response.prepare(request)
    with _client_may_leave():
        try:
            with request.app[IN_FLIGHT].cut_off_as_error():
                async for chunk in audio:
                    await _write(request, response, chunk)
        except PolyttsError as err:
            # The status has gone out: end the connection without the final chunk, so
            # the client sees an incomplete body rather than audio silently cut short.
            _LOGGER.error("Speech failed mid-stream (%s): %s", err.code, err)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
    return response


async def _send_events(
    request: web.Request, audio: AsyncGenerator[bytes, None]
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={hdrs.CONTENT_TYPE: sse.CONTENT_TYPE, hdrs.CACHE_CONTROL: "no-cache"}
    )
    await response.prepare(request)
    with _client_may_leave():
        try:
            with request.app[IN_FLIGHT].cut_off_as_error():
                async for chunk in audio:
                    await _write(request, response, sse.audio_delta(chunk))
        except PolyttsError as err:
            _LOGGER.error("Speech failed mid-stream (%s): %s", err.code, err)
            await _write(request, response, sse.error(ApiError.from_polytts(err)))
        else:
            await _write(request, response, sse.audio_done())
        await response.write_eof()
    return response


async def _write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Send ``data``; a client that has not read for the write timeout is dropped."""
    timeout = request.app[SETTINGS].write_timeout
    try:
        async with asyncio.timeout(timeout):
            await response.write(data)
    except TimeoutError as err:
        _LOGGER.info("Dropping HTTP client %s: it read nothing for %g s", request.remote, timeout)
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError(f"client read nothing for {timeout:g} s") from err


@contextmanager
def _client_may_leave() -> Iterator[None]:
    """A client leaving mid-stream is no error: its handler is cancelled (or a write
    fails) and closing the audio source cancels the synthesis."""
    try:
        yield
    except asyncio.CancelledError:
        _LOGGER.info("Client left; speech cancelled")
        raise
    except ConnectionResetError:
        _LOGGER.info("Client left; speech cancelled")

"""An OpenAI-compatible speech server over HTTP (aiohttp): its voices, and speech.

The link asks ``GET {base_url}/audio/voices`` what the server offers (or, with
voices named in the config, only whether it answers: a 401, 403 or 5xx or no
answer at all marks it down) and sends each sentence as one ``POST
{base_url}/audio/speech``, whose body is read as it arrives. The API key, when
there is one, is sent as a bearer token and never appears in a log line or an
error: it is masked in everything the server says back.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiohttp

from ...common.echo import clip
from ...common.json_limits import decode_json
from ...errors import PolyttsError, SynthesisError, VoiceNotFoundError
from .client import Audio
from .link import LinkTimings, PolledLink
from .listing import ListedVoice, ListingError, error_message, parse_voice_list

MAX_LIST_BYTES = 1 << 20
"""Longest voice list (or error body) read from the server."""


class AudioDecoder(Protocol):
    """Turns a body's bytes into audio as they arrive (see ``wav_stream.py``)."""

    def feed(self, data: bytes) -> list[Audio]: ...

    def finish(self) -> None: ...


class HttpAnswerError(PolyttsError):
    """The server answered with an error status (carried in :attr:`status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SpeechServerLink(PolledLink[list[ListedVoice], aiohttp.ClientSession]):
    """One OpenAI-compatible speech server, at ``base_url`` (e.g. ``http://host:8880/v1``)."""

    probe_errors = (OSError, TimeoutError, aiohttp.ClientError, PolyttsError, ListingError)

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        configured: list[str] | None,
        connections: int,
        timings: LinkTimings,
        on_info: Callable[[list[ListedVoice]], None],
        on_change: Callable[[], None],
    ) -> None:
        """``configured``: the voices named in the config (None: as the server lists
        them); ``connections``: requests at once, besides the voice-list probe."""
        super().__init__(base_url, timings, on_info, on_change)
        self._base = base_url.rstrip("/")
        self._key = api_key or None
        self._configured = configured
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else None
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.timings.connect, sock_read=self.timings.request
            ),
            connector=aiohttp.TCPConnector(limit=self._connections + 1),
            raise_for_status=False,
        )
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def mask(self, text: str) -> str:
        """``text`` with the API key masked."""
        return text.replace(self._key, "***") if self._key else text

    # --- voices -------------------------------------------------------------

    async def _probe(self) -> list[ListedVoice]:
        async with self._open().get(f"{self._base}/audio/voices") as response:
            if self._configured is not None:  # only whether it answers, and lets us in
                if _unwell(response.status):
                    raise HttpAnswerError(await self._answer(response), response.status)
                return [ListedVoice(name) for name in self._configured]
            if response.status != 200:
                raise HttpAnswerError(await self._answer(response), response.status)
            body = await _read_bounded(response, MAX_LIST_BYTES)
        data = decode_json(body, "its voice list")
        try:
            return parse_voice_list(data)
        except ListingError as err:
            raise ListingError(f"its voice list is not one: {err}") from err

    # --- speech -------------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiohttp.ClientSession]:
        """The session, with failures turned into errors the client reads."""
        session = self._open()
        try:
            yield session
        except HttpAnswerError as err:
            if _unwell(err.status):
                self.check_soon()
            raise
        except PolyttsError:
            raise
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            raise self.unreachable(err) from err  # before TimeoutError: it is one
        except TimeoutError as err:
            self.check_soon()
            raise SynthesisError(
                f"upstream {self.label} sent nothing for {self.timings.request:g} s"
            ) from err
        except (aiohttp.ClientError, OSError) as err:
            self.check_soon()
            why = self.mask(str(err)) or type(err).__name__
            raise SynthesisError(f"upstream {self.label} broke off the answer: {why}") from err

    async def speech(
        self,
        body: dict[str, Any],
        decoder: AudioDecoder,
        max_bytes: int,
        put: Callable[[Audio], None],
        abandoned: threading.Event,
    ) -> None:
        """POST one sentence; its audio goes to ``put`` as it arrives, until ``abandoned``."""
        async with (
            self.connection() as session,
            session.post(f"{self._base}/audio/speech", json=body) as response,
        ):
            self.answered()
            if response.status != 200:
                detail = await self._answer(response)
                if response.status == 404:
                    voice = clip(body.get("voice"))
                    raise VoiceGoneError(
                        f"upstream {self.label} has no voice '{voice}': {detail}", 404
                    )
                raise HttpAnswerError(f"upstream {self.label} answered {detail}", response.status)
            received = 0
            async for data in response.content.iter_any():
                received += len(data)
                if received > max_bytes:
                    raise SynthesisError(
                        f"upstream {self.label} sent more than {max_bytes} bytes for one sentence"
                    )
                for audio in decoder.feed(data):
                    if abandoned.is_set():
                        return
                    put(audio)
            decoder.finish()

    # --- helpers ------------------------------------------------------------

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise self.unavailable()
        return self._session

    async def _answer(self, response: aiohttp.ClientResponse) -> str:
        """An error answer in a few words, from its (bounded) body: ``HTTP 401: ...``."""
        text = ""
        data: Any = None
        try:
            raw = await _read_bounded(response, MAX_LIST_BYTES)
            text = raw.decode("utf-8", errors="replace")
            data = decode_json(raw, "the error")
        except (PolyttsError, ListingError, aiohttp.ClientError, TimeoutError):
            pass  # not JSON (or cut off): the text is the message
        message, code = error_message(data, text)
        return self.mask(f"HTTP {response.status}: {message}" + (f" ({code})" if code else ""))


class VoiceGoneError(HttpAnswerError, VoiceNotFoundError):
    """The server answered 404 to a speech request: it has no such voice (now)."""


def _unwell(status: int) -> bool:
    """An answer that makes the server unusable: the key refused, or a server error."""
    return status in (401, 403) or status >= 500


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, refused (as a failure) when it is longer than ``limit`` bytes."""
    body = bytearray()
    async for data in response.content.iter_any():
        body += data
        if len(body) > limit:
            raise ListingError(f"the answer is longer than {limit} bytes")
    return bytes(body)

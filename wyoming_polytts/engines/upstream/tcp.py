"""A Wyoming server over the network: ``tcp://host:port`` or ``unix://path``.

Every request opens a connection of its own; the upstream's ``info`` is asked
for on a connection of its own too, every ``refresh`` seconds while it is up
(see :class:`~.link.PolledLink` for the back-off while it is down).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlparse

from ...errors import PolyttsError
from .client import Conversation, UpstreamClosedError, UpstreamInfo, describe, request_failure
from .link import LinkTimings, PolledLink


class TcpLink(PolledLink[UpstreamInfo, Conversation]):
    """A Wyoming server at ``tcp://host:port`` (or ``unix://path``); a connection per request."""

    probe_errors = (OSError, TimeoutError, UpstreamClosedError, PolyttsError)

    def __init__(
        self,
        uri: str,
        timings: LinkTimings,
        on_info: Callable[[UpstreamInfo], None],
        on_change: Callable[[], None],
    ) -> None:
        super().__init__(uri, timings, on_info, on_change)
        self._uri = urlparse(uri)

    async def _open(self) -> Conversation:
        if self._uri.scheme == "unix":
            opening = asyncio.open_unix_connection(self._uri.path)
        else:
            opening = asyncio.open_connection(self._uri.hostname, self._uri.port)
        reader, writer = await asyncio.wait_for(opening, self.timings.connect)
        return Conversation(reader, writer, self.timings.request)

    async def _probe(self) -> UpstreamInfo:
        conversation = await self._open()
        try:
            return await describe(conversation)
        finally:
            await _close(conversation)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conversation]:
        try:
            conversation = await self._open()
        except (OSError, TimeoutError) as err:
            raise self.unreachable(err) from err
        self.answered()
        try:
            yield conversation
        except (OSError, UpstreamClosedError) as err:
            self.check_soon()
            raise request_failure(self.label, err, self.timings.request) from err
        finally:
            await _close(conversation)


async def _close(conversation: Conversation) -> None:
    conversation.writer.close()
    with suppress(OSError):  # already reset by the other side
        await conversation.writer.wait_closed()

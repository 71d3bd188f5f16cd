"""An engine whose voices live on another server, reached through a :class:`~.link.Link`.

Engines are blocking (the pool runs them in worker threads) while links are
asyncio. The link therefore lives on a private event loop in a thread of its own
(:class:`~.client.LoopThread`), started at load and stopped at unload; a
sentence's audio crosses to the worker thread as it arrives
(:class:`~.client.PieceStream`) and leaves as 16-bit mono at the rate the stream
declared.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np

from ...errors import EngineUnavailableError, PolyttsError
from ..base import Engine, EngineContext, OptionsT
from .audio import Resampler, mono_int16
from .client import Audio, LoopThread, PieceStream
from .link import Link, LinkState

LinkT = TypeVar("LinkT", bound=Link[Any, Any])


class LinkedEngine(Engine[OptionsT], Generic[OptionsT, LinkT]):
    """The loop, the link and the audio relay that every upstream engine shares."""

    default_concurrency = 2

    label: str
    """The upstream as logs and errors name it (its address, or its program); set by
    the subclass's ``__init__``."""

    def __init__(self, options: OptionsT, context: EngineContext) -> None:
        super().__init__(options, context)
        self._loop: LoopThread | None = None
        self._link: LinkT | None = None

    @abstractmethod
    def _new_link(self) -> tuple[LinkT, float]:
        """A link to the upstream (not started yet), and the seconds :meth:`load` waits
        for its first attempt to reach the upstream."""

    def _load_failure(self, link: LinkT) -> PolyttsError | None:
        """Why the load fails after the first attempt, if it does (an upstream that is
        merely down does not fail it: its voices come when it does)."""
        return None

    def load(self) -> None:
        """Start the link and wait for its first attempt to reach the upstream."""
        loop = LoopThread(f"polytts-{self.label}")
        link, wait = self._new_link()
        loop.run(link.start())
        loop.run(link.first_attempt(wait))
        failure = self._load_failure(link)
        if failure is not None:
            loop.run(link.stop())
            loop.stop()
            raise failure
        self._loop, self._link = loop, link

    def unload(self) -> None:
        """Close the link; the voices stay listed."""
        loop, link = self._loop, self._link
        self._loop = self._link = None
        if loop is not None and link is not None:
            loop.run(link.stop())
            loop.stop()

    def _connected(self) -> tuple[LoopThread, LinkT]:
        loop, link = self._loop, self._link
        if loop is None or link is None:
            raise EngineUnavailableError(f"upstream {self.label} is not connected")
        return loop, link

    def _down_reason(self) -> str | None:
        """Why the voices cannot be used now, while the upstream is down."""
        link = self._link
        if link is not None and link.state is LinkState.DOWN:
            return str(link.unavailable())
        return None

    def _link_health(self) -> dict[str, Any]:
        link = self._link
        details = link.health() if link is not None else {"ok": True, "state": "stopped"}
        return {"upstream": self.label, **details}

    def _relay(
        self,
        stream: PieceStream[Audio],
        resampler: Resampler,
        seen: Callable[[Audio], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """The stream's audio as 16-bit mono at the resampler's rate, piece by piece;
        ``seen`` is told of each piece as it arrives. Closing stops the stream."""
        try:
            for audio in stream:
                if seen is not None:
                    seen(audio)
                pcm = resampler.convert(mono_int16(audio), audio.rate)
                if pcm.size:
                    yield pcm
            tail = resampler.flush()
            if tail.size:
                yield tail
        finally:
            stream.close()

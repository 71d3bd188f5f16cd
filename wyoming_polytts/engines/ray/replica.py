"""What runs on the cluster's nodes: an engine's replicas, and the listing of its voices.

:class:`EngineReplica` is the class of an engine's Serve deployment: each replica
builds the engine's own class from the server's options, loads it in its
constructor (Serve counts the replica as started once it has), and streams each
sentence's PCM back piece by piece. Its ``synthesize`` is an async generator, so
that a caller who cancels the response stops it in the replica (a plain
generator would run on). The engine's blocking generator runs in a thread of the
replica, one per request it takes at once, and stops at its next piece.

:func:`describe_voices` lists the engine's voices on a node without loading it,
as a Ray task (see :meth:`.cluster.Cluster.describe`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import ray

from .. import engine_class
from ..base import Engine, EngineContext, EngineOptions, SynthesisRequest, VoiceInfo
from .voices import NodeVoices, VoiceContent

_LOGGER = logging.getLogger(__name__)

_VOICES_FOLDER = "ray-voices"
"""Folder of ``cache_dir`` (on each node) where library recordings are kept by hash."""


class _End:
    """Marks the end of one sentence's pieces."""


_END = _End()


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything a node needs to build the engine of one config section."""

    section: str
    """The engine's config section (``kokoro``, ``wyoming-pi``...)."""

    options: EngineOptions
    """The section's options, ``concurrency`` set to what one replica takes at once."""

    cache_dir: Path
    base_dir: Path
    """The server's folders, read on the node: nodes share the server's layout."""

    threads: int | None
    """CPU threads the engine may use; None: every core of the node."""

    def build(self) -> tuple[Engine, NodeVoices]:
        """The engine (not loaded), and the library voices it will be told about."""
        voices = NodeVoices(self.cache_dir / _VOICES_FOLDER)
        context = EngineContext(
            cache_dir=self.cache_dir,
            voices_dir=voices.folder,
            threads=self.threads or os.cpu_count() or 1,
            base_dir=self.base_dir,
            reference_voices=voices,
        )
        return engine_class(self.section)(self.options, context), voices


class EngineReplica:
    """One replica of an engine's deployment: the engine, loaded, and its threads."""

    def __init__(self, spec: ReplicaSpec) -> None:
        self._engine, self._voices = spec.build()
        self._engine.prepare()
        self._engine.load()
        self._threads = ThreadPoolExecutor(
            self._engine.concurrency, thread_name_prefix=f"polytts-{spec.section}"
        )
        _LOGGER.info("Engine %s loaded in replica pid %d", spec.section, os.getpid())

    async def synthesize(
        self, request: SynthesisRequest, voice: VoiceContent | None
    ) -> AsyncIterator[np.ndarray]:
        """One sentence's PCM; ``voice`` carries a library voice the request speaks with."""
        if voice is not None:
            await self._voices.receive(voice)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[np.ndarray | Exception | _End] = asyncio.Queue()
        stop = threading.Event()

        def put(item: np.ndarray | Exception | _End) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, item)

        start = partial(self._engine.synthesize, request)
        loop.run_in_executor(self._threads, _drain, start, put, stop)
        try:
            while not isinstance(item := await pieces.get(), _End):
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop.set()  # the caller cancelled (or the engine failed): its thread stops

    async def voices(self, library: list[VoiceContent]) -> list[VoiceInfo]:
        """The loaded engine's voices (an upstream's come only once it is connected), with
        the library voices of ``library``."""
        self._voices.listing = [await self._voices.receive(content) for content in library]
        return self._engine.voices()


def _drain(
    start: Callable[[], Iterator[np.ndarray]],
    put: Callable[[np.ndarray | Exception | _End], None],
    stop: threading.Event,
) -> None:
    """Hand the engine's pieces to the replica's loop until they end or ``stop`` is set
    (blocking; in a thread of the replica)."""
    pieces: Iterator[np.ndarray] | None = None
    try:
        pieces = start()
        for piece in pieces:
            if stop.is_set():
                break
            put(piece)
    except Exception as err:  # raised to the caller, as in the server's own workers
        put(err)
    finally:
        if isinstance(pieces, Generator):
            pieces.close()
        put(_END)


@ray.remote
def describe_voices(spec: ReplicaSpec, library: list[VoiceContent]) -> list[VoiceInfo]:
    """The engine's voices as it lists them on this node (without loading it), with the
    library voices of ``library`` fetched here first."""
    engine, voices = spec.build()
    voices.listing = [voices.fetch(content) for content in library]
    engine.prepare()
    return engine.voices()

"""What runs on the cluster's nodes: an engine's replicas, and the listing of its voices.

:class:`EngineReplica` is the class of an engine's Serve deployment: each replica
builds the engine's own class from the server's options, loads it in its
constructor (Serve counts the replica as started once it has), and streams each
sentence's PCM back piece by piece. Its ``synthesize`` is an async generator, so
that a caller who cancels the response stops it in the replica (a plain
generator would run on). The engine's blocking generator is stepped a piece at a
time in the replica's threads, as many as the engine's ``concurrency``, taking
turns (:mod:`.turns`); a cancelled sentence stops after the piece it is on.

:func:`describe_voices` lists the engine's voices on a node without loading it,
as a Ray task (see :meth:`.cluster.Cluster.describe`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import ray

from .. import engine_class
from ..base import Engine, EngineContext, EngineOptions, SynthesisRequest, VoiceInfo
from .turns import Turns
from .voices import NodeVoices, VoiceContent

_LOGGER = logging.getLogger(__name__)

_VOICES_FOLDER = "ray-voices"
"""Folder of ``cache_dir`` (on each node) where library recordings are kept by hash."""


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
        concurrency = self._engine.concurrency
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix=spec.section)
        self._turns = Turns(concurrency)
        _LOGGER.info("Engine %s loaded in replica pid %d", spec.section, os.getpid())

    async def synthesize(
        self, request: SynthesisRequest, voice: VoiceContent | None
    ) -> AsyncIterator[np.ndarray]:
        """One sentence's PCM, a turn per piece (see :mod:`.turns`); ``voice`` carries
        the library voice the request speaks with."""
        if voice is not None:
            await self._voices.receive(voice)
        sentence = _Sentence(partial(self._engine.synthesize, request))
        arrival, unheard = self._turns.arrival(), request.first
        step: Future[np.ndarray | None] | None = None
        try:
            while True:
                await self._turns.take(unheard, request.first, arrival)
                try:
                    step = self._threads.submit(sentence.next_piece)
                    piece = await asyncio.wrap_future(step)
                finally:
                    self._turns.give()
                if piece is None:
                    return
                unheard = False
                yield piece
        finally:  # ended, failed, or cancelled by the caller: closed once its step is over
            if step is not None:
                step.add_done_callback(lambda _: self._threads.submit(sentence.close))

    async def voices(self, library: list[VoiceContent]) -> list[VoiceInfo]:
        """The loaded engine's voices (an upstream's come only once it is connected), with
        the library voices of ``library``."""
        self._voices.listing = [await self._voices.receive(content) for content in library]
        return self._engine.voices()


class _Sentence:
    """The engine's generator for one sentence, stepped one piece at a time in whichever
    thread of the replica has the turn (never two at once)."""

    def __init__(self, start: Callable[[], Iterator[np.ndarray]]) -> None:
        self._start = start
        self._pieces: Iterator[np.ndarray] | None = None

    def next_piece(self) -> np.ndarray | None:
        """The next piece, or None at the end (blocking)."""
        if self._pieces is None:
            self._pieces = self._start()
        return next(self._pieces, None)

    def close(self) -> None:
        if isinstance(self._pieces, Generator):
            self._pieces.close()


@ray.remote
def describe_voices(spec: ReplicaSpec, library: list[VoiceContent]) -> list[VoiceInfo]:
    """The engine's voices as it lists them on this node (without loading it), with the
    library voices of ``library`` fetched here first."""
    engine, voices = spec.build()
    voices.listing = [voices.fetch(content) for content in library]
    engine.prepare()
    return engine.voices()

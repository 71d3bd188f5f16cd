"""An engine placed on Ray: the engine contract, fulfilled by Ray Serve replicas.

Nothing above the pool knows. The proxy has the engine class's name, capabilities
and request options; ``load()`` deploys the engine's Serve application and waits
until its replicas have loaded the engine's own class, ``unload()`` deletes it (no
replica is left), and ``synthesize()`` streams one sentence from a replica piece
by piece through a deployment handle, in the pool's worker thread as any engine
does. When the pool cancels a sentence, :meth:`RayEngine.cancel` cancels the
replica's call at once, which frees its place there. The pool sends up to
``replicas * max_ongoing_requests`` sentences at once, first sentences first; in
a replica they take turns piece by piece as in the pool (see :mod:`.turns`), so
the pool does not set a sentence aside itself (``pausable``).

Its voices are read on a node of the cluster and kept (see :mod:`.watch`);
library voices go there by content (see :mod:`.voices`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import numpy as np
from ray.exceptions import RayError
from ray.serve.exceptions import RequestCancelledError

from ...common.file_cache import file_key
from ...common.reference_voice import ReferenceVoice
from ...errors import EngineUnavailableError, SynthesisError
from ..base import Engine, EngineContext, EngineOptions, SynthesisRequest, VoiceInfo
from ..placement import RaySettings
from .cluster import Cluster, remote_failure
from .replica import ReplicaSpec
from .voices import Uploads, VoiceContent
from .watch import Watcher

_LOGGER = logging.getLogger(__name__)

DEFAULT_ONGOING = 8
"""Sentences a replica takes at once when ``max_ongoing_requests`` is not set; its engine
works on ``concurrency`` of them at a time, taking turns (see :mod:`.turns`)."""

_LISTING_TIMEOUT = 60.0
"""Seconds a replica may take to list the engine's voices."""

_FIRST_LISTING_WAIT = 30.0
"""Seconds the server's start waits for an engine's voices to be listed on the cluster
(later they come when they come)."""


class RayEngines:
    """Makes the proxies of one server; they share its connection to the cluster."""

    def __init__(self, settings: RaySettings) -> None:
        self._cluster = Cluster(settings)

    def create(
        self, section: str, cls: type[Engine], options: EngineOptions, context: EngineContext
    ) -> Engine:
        """The proxy of config section ``section``, whose engine class is ``cls``."""
        proxy = type(
            f"Ray{cls.__name__}",
            (RayEngine,),
            {
                "name": cls.name,
                "capabilities": cls.capabilities,
                "options_type": cls.options_type,
                "option_keys": cls.option_keys,
                "default_preload": cls.default_preload,
            },
        )
        return cast(type[RayEngine], proxy)(options, context, section, self._cluster)


class RayEngine(Engine[EngineOptions]):
    """Base of the proxies: the engine class's facts are set on each subclass."""

    pausable = False  # the call would go on in the replica, which takes turns itself

    def __init__(
        self, options: EngineOptions, context: EngineContext, section: str, cluster: Cluster
    ) -> None:
        super().__init__(options, context)
        self.section = section
        self._cluster = cluster
        self._placement = options.ray
        self._per_replica = options.ray.max_ongoing_requests or DEFAULT_ONGOING
        self._deployment = cluster.deployment(section, options.ray)
        num_cpus = options.ray.num_cpus
        self._spec = ReplicaSpec(
            section=section,
            options=replace(options, placement="local"),
            cache_dir=context.cache_dir,
            base_dir=context.base_dir,
            threads=max(1, round(num_cpus)) if num_cpus else None,
        )
        self._handle: Any = None
        """The deployment's handle while it is deployed."""

        self._stream: Any = None
        """The same, for streaming calls."""

        self._calls: dict[int, Any] = {}
        """Response generators of the calls under way, by ``id`` of their request."""

        self._calls_lock = threading.Lock()
        self._uploads = Uploads()
        self._library_seen: list[tuple[Any, ...]] | None = None
        self._watcher = Watcher(
            self._deployment, self._list_voices, options.ray.refresh_interval, self.voices_changed
        )

    @property
    def concurrency(self) -> int:
        """Sentences at once: replicas (at most) times what each takes at once."""
        return self._placement.max_replicas * self._per_replica

    # --- voices -----------------------------------------------------------

    def prepare(self) -> None:
        """Join the cluster and list the engine's voices there (waited for a while)."""
        self._watcher.start(_FIRST_LISTING_WAIT)

    def voices(self) -> list[VoiceInfo]:
        """The voices as last listed on the cluster; a change of the voice library asks
        for a new listing. Unusable while the cluster cannot be asked and the engine is
        not loaded."""
        if self.capabilities.cloning:
            seen = [_library_key(v) for v in self.context.reference_voices.for_engine(self.name)]
            if seen != self._library_seen:
                self._library_seen = seen
                self._watcher.refresh(voices=True)
        voices, problem = self._watcher.voices, self._watcher.problem
        if problem is None or self._handle is not None:
            return voices
        return [replace(voice, installed=False, reason=problem) for voice in voices]

    def _list_voices(self) -> list[VoiceInfo]:
        """The voices as a replica lists them (its engine loaded), else as a node where the
        replicas can run lists them."""
        library = self._library()
        handle = self._handle
        if handle is None:
            return self._cluster.describe(self._spec, self._placement.requirements(), library)
        try:
            voices: list[VoiceInfo] = handle.voices.remote(library).result(
                timeout_s=_LISTING_TIMEOUT
            )
        except (RayError, TimeoutError) as err:
            raise remote_failure(self.section, err) from err
        return voices

    def _library(self) -> list[VoiceContent]:
        """The library voices of a cloning engine, by content."""
        library = []
        if self.capabilities.cloning:
            for voice in self.context.reference_voices.for_engine(self.name):
                try:
                    library.append(self._uploads.content(voice))
                except SynthesisError as err:  # its recording is missing: not offered
                    _LOGGER.debug("Voice %s is not sent to Ray: %s", voice.id, err)
        return library

    # --- loading ----------------------------------------------------------

    def load(self) -> None:
        """Deploy the engine's application and wait until its replicas have loaded."""
        self._cluster.connect()
        self._cluster.node_offering(self._placement.requirements())  # fail now, not never
        self.report_progress(f"starting {self._placement.max_replicas} Ray replica(s)")
        self._watcher.deployed(True)
        try:
            handle = self._deployment.deploy(self._spec, self._per_replica)
        except BaseException:
            self._watcher.deployed(False)
            raise
        self._handle, self._stream = handle, handle.options(stream=True)
        self._watcher.refresh(voices=True)

    def unload(self) -> None:
        """Delete the application: no replica is left holding memory."""
        self._handle = self._stream = None
        self._watcher.deployed(False)
        self._deployment.delete()

    def memory_usage(self) -> int | None:
        """Nothing in this process: the replicas hold the engine's memory."""
        return 0

    def replicas(self) -> dict[str, int]:
        states = self._watcher.states
        return dict(states.replicas) if states is not None else {}

    def health(self) -> dict[str, Any]:
        states = self._watcher.states
        problem = self._watcher.problem
        ok = problem is None and (states is None or states.healthy or self._handle is None)
        return {
            "ok": ok,
            "deployment": self._deployment.app,
            "status": states.status if states is not None else "not deployed",
            "replicas": self.replicas(),
            **({"message": states.message} if states is not None and states.message else {}),
            **({"problem": problem} if problem is not None else {}),
        }

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        stream = self._stream
        if stream is None:
            raise EngineUnavailableError(f"engine '{self.section}' is not deployed on Ray")
        call = stream.synthesize.remote(request, self._voice(request))
        with self._calls_lock:
            self._calls[id(request)] = call
        try:
            yield from call
        except RequestCancelledError:
            return  # cancelled by the pool: nobody reads on
        except RayError as err:
            raise remote_failure(self.section, err) from err
        finally:
            with self._calls_lock:
                self._calls.pop(id(request), None)
            call.cancel()  # a no-op once it has ended; stops it when the pool stopped reading

    def _voice(self, request: SynthesisRequest) -> VoiceContent | None:
        """The library voice ``request`` speaks with, by content (None for the engine's own)."""
        if not self.capabilities.cloning:
            return None
        voice = self.context.reference_voices.find(self.name, request.voice)
        return self._uploads.content(voice) if voice is not None else None

    def cancel(self, request: SynthesisRequest) -> None:
        with self._calls_lock:
            call = self._calls.get(id(request))
        if call is not None:
            call.cancel()


def _library_key(voice: ReferenceVoice) -> tuple[Any, ...]:
    """What tells one state of a library voice from another, cheaply (no audio read)."""
    try:
        recording: Any = file_key(voice.audio_path)
    except OSError:
        recording = None
    return (voice.id, voice.transcript, tuple(voice.languages), voice.description, recording)

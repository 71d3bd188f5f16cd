"""The engine interface every TTS backend implements.

An engine owns one model family. The pool calls its blocking methods in a worker
thread: ``load()`` does all the I/O, ``synthesize()`` yields PCM as soon as each
piece exists. Engines know nothing about Wyoming or HTTP.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, get_args

import numpy as np

from ..common.reference_voice import NoReferenceVoices, ReferenceVoices
from ..errors import InvalidRequestError
from .placement import Placement, RayPlacement

_LOGGER = logging.getLogger(__name__)


@dataclass
class EngineOptions:
    """Options every engine accepts in its ``engines.<name>`` config section."""

    enabled: bool = True
    concurrency: int | None = None
    """Requests the engine runs at once; None means the engine's own default."""

    preload: bool | None = None
    """Load at start (True) or on the first request (False); None means the engine
    class's ``default_preload``."""

    idle_unload_after: float | None = None
    """Seconds without requests after which the engine is unloaded; None never unloads."""

    memory_estimate: int | str | None = None
    """Memory the loaded engine takes, in bytes or as text such as ``2GiB``, for planning
    loads under ``pool.gpu_memory_budget``; a larger size measured at a load replaces it.
    None: unknown until the first load is measured."""

    placement: Placement = "local"
    """Where the engine runs: in this process, or as Ray Serve replicas on the cluster
    of the ``ray`` section (docs/ray.md)."""

    ray: RayPlacement = field(default_factory=RayPlacement)
    """Replicas, resources and scaling when ``placement`` is ``ray``."""


@dataclass(frozen=True)
class EngineContext:
    """Server-wide facts an engine may need while loading."""

    cache_dir: Path
    """Folder for downloaded or reassembled weights."""

    voices_dir: Path
    """The voice library folder (cloned voices)."""

    threads: int
    """CPU threads the engine may use in total."""

    base_dir: Path
    """Folder that relative paths in the engine's options are resolved against."""

    reference_voices: ReferenceVoices = field(default_factory=NoReferenceVoices)
    """The voice library, for engines that clone."""

    def path(self, value: str) -> Path:
        """Resolve a path from the engine's options (``~`` expanded)."""
        return (self.base_dir / Path(value).expanduser()).resolve()


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, declared once per engine class."""

    streams_within_sentence: bool = False
    """Yields several pieces per sentence, before the sentence is finished."""

    cloning: bool = False
    """Can speak with voices of the voice library."""

    needs_transcript: bool = False
    """Cloning needs the transcript of the reference recording (what it says)."""

    native_speed: bool = True
    """Applies ``SynthesisRequest.speed`` itself (otherwise audio is time-stretched)."""

    max_sentence_chars: int | None = None
    """Longest text one ``synthesize`` call accepts; longer sentences are split."""


@dataclass(frozen=True)
class LoadProgress:
    """How far an engine's ``load()`` has got, as the engine reports it."""

    step: str
    """What it is doing, e.g. ``downloading model.pth``."""

    fraction: float | None = None
    """Share of the step done, 0 to 1, when known."""

    def __str__(self) -> str:
        return self.step if self.fraction is None else f"{self.step} ({self.fraction:.0%})"


@dataclass(frozen=True)
class Attribution:
    """Who made a voice or model, and where to read about it."""

    name: str
    url: str


@dataclass(frozen=True)
class VoiceInfo:
    """One voice as its engine describes it."""

    id: str
    """Engine-local identifier, unique within the engine."""

    sample_rate: int
    """Hertz of the PCM ``synthesize`` yields for this voice."""

    languages: list[str]
    """Languages in ``en_US`` style, the first being the default."""

    description: str
    attribution: Attribution
    speakers: list[str] = field(default_factory=list)
    installed: bool = True
    """False when the voice is known but cannot be used now (see ``reason``)."""

    reason: str | None = None
    """Why the voice cannot be used, when ``installed`` is False."""

    version: str | None = None


@dataclass(frozen=True)
class SynthesisRequest:
    """One piece of text (a sentence or clause) to speak."""

    text: str
    voice: str
    """Engine-local voice id."""

    speaker: str | None = None
    language: str | None = None
    """Requested language; None lets the engine choose (voice default or detection)."""

    speed: float | None = None
    """Speaking rate factor (1.0 normal); None means the engine's default."""

    options: Mapping[str, Any] = field(default_factory=dict)
    """Engine-specific overrides (sampling settings and the like)."""

    sample_rate: int | None = None
    """Hertz the front door declared for this request's stream (the voice's
    ``sample_rate`` when the request was resolved); None means the voice's rate now.
    An engine whose voice rate can change while it runs (a Wyoming upstream learns it)
    yields PCM at this rate, so one stream keeps one format."""

    first: bool = False
    """The request's first sentence: its listener hears nothing until its audio starts,
    so an engine that can hand over its start early at some cost should do it here."""

    crowded: bool = False
    """Other requests' first sentences wait behind this one (set by the pool as the
    sentence starts; first sentences only): each waiting listener hears nothing until
    this one hands over its first piece, so an engine may make that piece shorter."""


OptionsT = TypeVar("OptionsT", bound=EngineOptions)

ADVISORY_OPTIONS = frozenset({"instructions"})
"""Request options that an engine which does not take them ignores instead of refusing:
OpenAI clients send a style prompt (``instructions``) with every request, whatever the
voice, and speech without the style beats no speech."""


class Engine(ABC, Generic[OptionsT]):
    """Base class of all engines; ``class PiperEngine(Engine[PiperOptions])`` declares the
    options dataclass of its config section once."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    options_type: ClassVar[type[EngineOptions]] = EngineOptions
    """The ``OptionsT`` of the class statement, which config sections are read into."""

    default_concurrency: ClassVar[int] = 1
    option_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys of ``SynthesisRequest.options`` the engine takes; requests with others are refused."""
    default_preload: ClassVar[bool] = True
    """Whether the engine loads at start when its ``preload`` option is None."""

    pausable: ClassVar[bool] = True
    """The pool may set a sentence aside between two pieces (its generator kept, its work
    stopped) to give the worker to a waiting first sentence. False for an engine whose work
    goes on elsewhere meanwhile (Ray replicas, which take such turns themselves)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            for arg in get_args(base):  # PiperOptions of Engine[PiperOptions]; not a TypeVar
                if isinstance(arg, type) and issubclass(arg, EngineOptions):
                    cls.options_type = arg

    def __init__(self, options: OptionsT, context: EngineContext) -> None:
        self.options: OptionsT = options
        self.context = context
        self.load_progress: LoadProgress | None = None
        """Set through :meth:`report_progress` while loading; the pool clears it."""

        self._voice_watchers: list[Callable[[], None]] = []

    @property
    def concurrency(self) -> int:
        """How many ``synthesize`` calls may run at once."""
        return self.options.concurrency or self.default_concurrency

    def check_options(self, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Refuse request options the engine does not take, before any work starts;
        returns those to pass on (:data:`ADVISORY_OPTIONS` it does not take are dropped)."""
        unknown = sorted(set(options) - self.option_keys - ADVISORY_OPTIONS)
        if unknown:
            takes = ", ".join(sorted(self.option_keys)) or "none"
            raise InvalidRequestError(
                f"the {self.name} engine has no option '{unknown[0]}' (it takes: {takes})"
            )
        return {key: value for key, value in options.items() if key in self.option_keys}

    @abstractmethod
    def load(self) -> None:
        """Load weights (blocking; called in a worker thread)."""

    @abstractmethod
    def unload(self) -> None:
        """Free the model's memory (blocking; called when no request runs).

        Drop every reference to the model: the pool then collects garbage and
        returns cached CUDA and heap memory, and may call :meth:`load` again later.
        """

    def report_progress(self, step: str, fraction: float | None = None) -> None:
        """Tell the pool how far :meth:`load` has got (shown in ``/health``; new steps logged).

        Optional; for long steps such as downloads. Safe to call from the loading thread.
        """
        if self.load_progress is None or self.load_progress.step != step:
            _LOGGER.info("Engine %s: %s", self.name, step)
        self.load_progress = LoadProgress(step, fraction)

    def memory_usage(self) -> int | None:
        """Bytes the loaded model occupies, if the engine knows; None lets the pool measure.

        Called after each :meth:`load`. The pool's own measurement is the CUDA memory
        torch allocated during the load, when it allocated any, else the growth of the
        process's resident memory, which engines on other GPU runtimes may refine here.
        """
        return None

    def prepare(self) -> None:
        """Blocking discovery, run once in a worker thread before the server listens.

        For whatever :meth:`voices` needs that is slow the first time (XTTS reads its
        speaker file with torch), so that describe never waits on it.
        """
        return None

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """Voices this engine can speak with.

        Called on the event loop when the catalog is built (see ``speech/catalog.py``),
        never per request. Cheap: it may list folders and read small files, not weights.
        """

    def watch_voices(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called whenever :meth:`voices` answers differently because
        of something the engine learned by itself (see :meth:`voices_changed`)."""
        self._voice_watchers.append(callback)

    def voices_changed(self) -> None:
        """Tell the watchers (the catalog) that :meth:`voices` answers differently now,
        without a file having changed: an upstream's voices came, went, or showed their
        rate. Safe from any thread."""
        for callback in self._voice_watchers:
            callback()

    def dynamic_voice(self, name: str) -> VoiceInfo | None:
        """A voice not in :meth:`voices` that the engine builds from its name, or None.

        For names written in an engine's own syntax (Kokoro's blends such as
        ``af_bella(2)+af_sky``). May raise :class:`VoiceNotFoundError` to explain
        why such a name is wrong. Called on the event loop, so it must be cheap.
        """
        return None

    def replicas(self) -> dict[str, int] | None:
        """For an engine whose work runs in replicas elsewhere (Ray Serve): how many are in
        each state (``RUNNING``, ``STARTING``...); None for an engine in this process.
        Called on the event loop, so it must be cheap."""
        return None

    def health(self) -> dict[str, Any] | None:
        """Engine-specific health details for ``/health`` (JSON-able), or None.

        For engines that reach something outside the process (a Wyoming upstream
        or a child process): ``{"ok": False, ...}`` marks the engine degraded while
        it stays loaded. Called on the event loop, so it must be cheap.
        """
        return None

    @abstractmethod
    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        """Yield mono int16 PCM at the voice's sample rate, each piece as soon as it exists.

        Blocking; the pool runs it in a worker thread and may stop iterating early
        when the client goes away.
        """

    def cancel(self, request: SynthesisRequest) -> None:
        """The pool no longer wants the audio of ``request``, whose :meth:`synthesize` call
        has started: its client left, or the request failed.

        Called on the event loop, possibly while a worker waits inside the call. The pool
        stops iterating at the next piece anyway; an engine whose call waits on another
        machine (Ray) ends that call here at once, freeing the remote slot. The default
        does nothing.
        """
        return None

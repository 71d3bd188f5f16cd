"""One engine's lifecycle state, the one place it is kept, changed only by legal moves.

::

    unloaded ──begin_load──▶ loading ──loaded──▶ loaded ──begin_unload──▶ unloading
        ▲                     │   │                                         │
        │◀──refused/cancelled─┘   └──failed──▶ failed                       │
        │◀──────────────────────────allow_retry──┘                          │
        └◀───────────────────────────────unloaded────────────────────────────┘

Every move happens on the event loop (the runner and the lifecycle make them);
:class:`IllegalTransition` is raised for any other, so a race shows as an error
instead of a quietly wrong state. ``error`` says why the last load failed or was
refused and stays until a load succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import EllipsisType


class EngineState(StrEnum):
    """Lifecycle of an engine in the pool."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    FAILED = "failed"


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of one engine, for health reports and metrics."""

    state: EngineState
    error: str | None
    """Why the last load failed or was refused (kept until a load succeeds)."""

    progress: str | None
    """What a loading engine is doing, as far as it reports (e.g. a download's share)."""

    memory: int | None
    """Bytes the engine holds when loaded: measured at its last load, else the
    configured estimate; None when unknown."""

    concurrency: int
    running: int
    """Sentence jobs being synthesized now."""

    waiting: int
    """Sentence jobs queued."""

    requests: int
    """Requests admitted (running, queued or between sentences)."""

    stuck: int = 0
    """Sentence jobs past ``pool.job_timeout`` whose engine call has not returned yet
    (each keeps its worker busy)."""

    replicas: dict[str, int] | None = None
    """Replicas elsewhere (Ray Serve) by state; None for an engine in this process."""


class IllegalTransition(RuntimeError):
    """A lifecycle move that the engine's current state does not allow."""


_MOVES: dict[str, tuple[frozenset[EngineState], EngineState]] = {
    "begin_load": (frozenset({EngineState.UNLOADED}), EngineState.LOADING),
    "loaded": (frozenset({EngineState.LOADING}), EngineState.LOADED),
    "failed": (frozenset({EngineState.LOADING}), EngineState.FAILED),
    "refused": (frozenset({EngineState.LOADING}), EngineState.UNLOADED),
    "cancelled": (frozenset({EngineState.LOADING}), EngineState.UNLOADED),
    "allow_retry": (frozenset({EngineState.FAILED}), EngineState.UNLOADED),
    "begin_unload": (frozenset({EngineState.LOADED}), EngineState.UNLOADING),
    "unloaded": (frozenset({EngineState.UNLOADING}), EngineState.UNLOADED),
}
"""Each move: the states it may start from, and where it leads."""


class EngineSlot:
    """The state of one engine; see the module docstring for the moves."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._state = EngineState.UNLOADED
        self._error: str | None = None
        self._watchers: list[Callable[[], None]] = []

    def watch(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called after every move (its error already set)."""
        self._watchers.append(callback)

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def error(self) -> str | None:
        """Why the last load failed or was refused; None once a load succeeds."""
        return self._error

    def begin_load(self) -> None:
        self._move("begin_load")

    def loaded(self) -> None:
        self._move("loaded", None)

    def failed(self, error: str) -> None:
        self._move("failed", error)

    def refused(self, reason: str) -> None:
        """Not loaded after all: it would not fit the memory budget."""
        self._move("refused", reason)

    def cancelled(self) -> None:
        """A load given up before it began (the server is stopping)."""
        self._move("cancelled")

    def allow_retry(self) -> None:
        """A failed engine may be loaded again (its back-off has passed)."""
        self._move("allow_retry")

    def begin_unload(self) -> None:
        self._move("begin_unload")

    def unloaded(self, reason: str | None = None) -> None:
        """Unloaded; ``reason`` is kept as the error when the unload undid a load that
        went over the memory budget."""
        self._move("unloaded", ... if reason is None else reason)

    def note(self, reason: str) -> None:
        """Say why an unloaded engine was not loaded (e.g. not preloaded for the budget)."""
        if self._state is not EngineState.UNLOADED:
            raise IllegalTransition(
                f"engine {self.name}: a note needs it unloaded, not {self._state}"
            )
        self._error = reason

    def _move(self, move: str, error: str | EllipsisType | None = ...) -> None:
        """Make ``move``, and set the error unless it is ``...`` (kept as it is)."""
        sources, target = _MOVES[move]
        if self._state not in sources:
            raise IllegalTransition(f"engine {self.name}: cannot {move} while {self._state}")
        self._state = target
        if error is not ...:
            self._error = error
        for callback in self._watchers:
            callback()

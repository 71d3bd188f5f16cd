"""When engines load and unload: at start or on demand, within a memory budget, after idling.

- An engine loads at start when its ``preload`` says so, else on its first
  request. One engine loads at a time, so the budget is planned and each load
  measured without another load in between.
- Each engine counts as the larger of its ``memory_estimate`` and the size
  measured at its last load (see :mod:`.memory`). Before a load that would take
  the engines past ``pool.gpu_memory_budget``, the least recently used idle
  engines are unloaded; when that cannot free
  enough, the request fails with :class:`InsufficientMemoryError` naming what
  is loaded and what was needed. A load whose measured size still overshoots is
  rolled back the same way.
- "Idle" means no admitted request and no running or waiting job: an engine in
  use is never unloaded. Engines with ``idle_unload_after`` are unloaded once
  idle that long.
- A request for an engine that is loading waits for it, at most
  ``pool.load_wait`` seconds. An engine that failed to load stays failed for
  ``pool.load_retry_after`` seconds; the next request after that loads it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..engines.base import Engine
from ..errors import ConfigError, EngineUnavailableError, InsufficientMemoryError, PolyttsError
from .memory import format_bytes, parse_size
from .metrics import Metrics
from .runner import EngineRunner
from .slot import EngineState

_LOGGER = logging.getLogger(__name__)

_TICKS_PER_TIMEOUT = 4
"""How often per ``idle_unload_after`` period the idle watcher looks."""

_MAX_TICK = 10.0
"""Longest pause of the idle watcher, in seconds."""

_BUDGET_KEY = "pool.gpu_memory_budget"


@dataclass(frozen=True)
class LifecycleSettings:
    """The pool-wide part of the policy (the ``pool`` config section)."""

    memory_budget: int | None = None
    """Bytes all loaded engines may hold together; None: no budget."""

    load_wait: float = 120.0
    """Seconds a request waits for its engine to finish loading."""

    retry_after: float = 30.0
    """Seconds after a failed load before a request may try again."""


@dataclass(frozen=True)
class EnginePolicy:
    """One engine's part of the policy (from its ``engines.<name>`` options)."""

    preload: bool
    idle_unload_after: float | None
    """Seconds idle before unloading; None: never."""

    memory_estimate: int | None
    """The least the engine is counted as holding, in bytes; None: unknown until measured."""

    @classmethod
    def of(cls, name: str, engine: Engine) -> EnginePolicy:
        """The engine's options checked; a :class:`ConfigError` names a bad one."""
        options = engine.options
        key = f"engines.{name}"
        idle = options.idle_unload_after
        if idle is not None and idle <= 0:
            raise ConfigError(f"{key}.idle_unload_after: expected seconds above 0, got {idle!r}")
        estimate = options.memory_estimate
        return cls(
            preload=engine.default_preload if options.preload is None else options.preload,
            idle_unload_after=idle,
            memory_estimate=None
            if estimate is None
            else parse_size(estimate, f"{key}.memory_estimate"),
        )


class Lifecycle:
    """Loads and unloads the pool's engines according to their policies and the budget."""

    def __init__(
        self, runners: Mapping[str, EngineRunner], settings: LifecycleSettings, metrics: Metrics
    ) -> None:
        self._runners = runners
        self.policies = {name: EnginePolicy.of(name, r.engine) for name, r in runners.items()}
        self.settings = settings
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._transitions: dict[str, asyncio.Task[None]] = {}
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._watcher: asyncio.Task[None] | None = None

    def footprint(self, name: str) -> int | None:
        """Bytes the engine is counted as holding when loaded: the larger of its configured
        estimate and its last measured load; None while neither is known."""
        sizes = [self._runners[name].memory, self.policies[name].memory_estimate]
        known = [size for size in sizes if size is not None]
        return max(known) if known else None

    # --- start and stop ---------------------------------------------------

    async def start(self, preload: Iterable[str]) -> None:
        """Start the idle watcher, then load ``preload`` in order (failures are logged)."""
        timeouts = [p.idle_unload_after for p in self.policies.values() if p.idle_unload_after]
        if timeouts and self._watcher is None:
            tick = min(_MAX_TICK, min(timeouts) / _TICKS_PER_TIMEOUT)
            self._watcher = asyncio.create_task(self._watch_idle(tick))
        for name in preload:
            runner = self._runners[name]
            shortage = self._room_without_unloading(name)
            if shortage is not None:
                runner.slot.note(f"not preloaded: {shortage}; it loads on its first request")
                _LOGGER.warning("Engine %s %s", name, runner.slot.error)
                continue
            with contextlib.suppress(PolyttsError):  # logged where it happened
                await self.ensure_loaded(runner, bounded=False)

    async def close(self) -> None:
        """Stop the idle watcher, pending retries and loads (engines are unloaded by the pool)."""
        for handle in self._retries.values():
            handle.cancel()
        for task in list(self._transitions.values()):
            task.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    # --- loading ----------------------------------------------------------

    async def ensure_loaded(self, runner: EngineRunner, bounded: bool = True) -> None:
        """Return once ``runner`` is loaded, loading it if needed.

        Waits at most ``load_wait`` seconds when ``bounded``. Raises
        :class:`EngineUnavailableError` (failed, or still loading) or
        :class:`InsufficientMemoryError`.
        """
        limit = self.settings.load_wait if bounded else None
        try:
            async with asyncio.timeout(limit):
                while runner.state is not EngineState.LOADED:
                    if runner.state is EngineState.FAILED:
                        raise EngineUnavailableError(
                            f"engine '{runner.name}' failed to load: {runner.slot.error} (loaded "
                            f"again on a request {self.settings.retry_after:g} s after it failed)"
                        )
                    task = self._transitions.get(runner.name)
                    if task is None:
                        task = self._begin(runner.name, self._load(runner))
                    await asyncio.shield(task)
        except TimeoutError as err:
            progress = runner.engine.load_progress
            doing = f" ({progress})" if progress else ""
            raise EngineUnavailableError(
                f"engine '{runner.name}' is still loading{doing} after {limit:g} s; "
                "try again shortly"
            ) from err

    def _begin(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a load or unload of ``name`` as the task others wait for."""
        task = asyncio.create_task(work)
        self._transitions[name] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._transitions.get(name) is finished:
                del self._transitions[name]
            if not finished.cancelled():
                finished.exception()  # raised to the waiters; marked as seen here

        task.add_done_callback(done)
        return task

    async def _load(self, runner: EngineRunner) -> None:
        name = runner.name
        runner.slot.begin_load()
        if self._lock.locked():
            runner.engine.report_progress("waiting for another engine to finish loading")
        try:
            async with self._lock:
                await self._make_room(runner, self.footprint(name) or 0)
                await runner.load()
                await self._make_room(runner, self.footprint(name) or 0)  # as measured
        except InsufficientMemoryError as err:
            if runner.state is EngineState.LOADED:
                runner.slot.begin_unload()
                await runner.unload("over the memory budget", error=str(err))
            else:
                runner.slot.refused(str(err))
            runner.engine.load_progress = None
            self._metrics.loaded(name, "refused")
            _LOGGER.warning("Engine %s not loaded: %s", name, err)
            raise
        except EngineUnavailableError:
            self._metrics.loaded(name, "failed")
            self._retry_later(runner)
            raise
        except BaseException:  # cancelled while waiting (shutdown): nothing was loaded
            if runner.state is EngineState.LOADING:
                runner.slot.cancelled()
                runner.engine.load_progress = None
            raise
        self._metrics.loaded(name, "loaded")

    def _retry_later(self, runner: EngineRunner) -> None:
        def allow() -> None:
            if runner.state is EngineState.FAILED:
                runner.slot.allow_retry()
                _LOGGER.info("Engine %s will be loaded again on its next request", runner.name)

        loop = asyncio.get_running_loop()
        self._retries[runner.name] = loop.call_later(self.settings.retry_after, allow)

    # --- the memory budget ------------------------------------------------

    def _loaded_others(self, runner: EngineRunner) -> list[EngineRunner]:
        return [
            r for r in self._runners.values() if r is not runner and r.state is EngineState.LOADED
        ]

    def _held(self, runners: Iterable[EngineRunner]) -> int:
        return sum(self.footprint(r.name) or 0 for r in runners)

    def _room_without_unloading(self, name: str) -> str | None:
        """Why ``name`` does not fit beside the loaded engines; None when it does."""
        budget = self.settings.memory_budget
        need = self.footprint(name) or 0
        others = self._loaded_others(self._runners[name])
        if budget is None or need + self._held(others) <= budget:
            return None
        return self._shortage(name, need, others)

    async def _make_room(self, runner: EngineRunner, need: int) -> None:
        """Unload least recently used idle engines until ``need`` more bytes fit the budget."""
        budget = self.settings.memory_budget
        others = self._loaded_others(runner)
        held = self._held(others)
        if budget is None or need + held <= budget:
            return
        idle = sorted((r for r in others if r.idle), key=lambda r: r.last_used)
        if need + held - self._held(idle) <= budget:
            for victim in idle:
                if await self._unload(victim, f"to make room for {runner.name}", "memory"):
                    held -= self.footprint(victim.name) or 0
                if need + held <= budget:
                    return
        raise InsufficientMemoryError(
            self._shortage(runner.name, need, self._loaded_others(runner))
        )

    def _shortage(self, name: str, need: int, loaded: list[EngineRunner]) -> str:
        budget = format_bytes(self.settings.memory_budget)
        if not loaded or need > (self.settings.memory_budget or 0):
            return (
                f"engine '{name}' needs about {format_bytes(need)}, more than the whole "
                f"memory budget of {budget} ({_BUDGET_KEY})"
            )
        held = ", ".join(
            f"{r.name} {format_bytes(self.footprint(r.name))} ({'idle' if r.idle else 'in use'})"
            for r in loaded
        )
        return (
            f"not enough memory for engine '{name}': it needs about {format_bytes(need)} of the "
            f"{budget} memory budget ({_BUDGET_KEY}), and loaded are {held}; "
            "try again when they are idle"
        )

    # --- unloading --------------------------------------------------------

    async def _unload(self, runner: EngineRunner, why: str, reason: str) -> bool:
        """Unload ``runner`` if it is loaded and idle right now; True if it was."""
        if runner.state is not EngineState.LOADED or not runner.idle:
            return False
        runner.slot.begin_unload()  # before any await: no request may start on it
        await self._begin(runner.name, runner.unload(why))
        self._metrics.unloaded(runner.name, reason)
        return True

    def _idle_for(self, runner: EngineRunner) -> float:
        if runner.state is not EngineState.LOADED or not runner.idle:
            return 0.0
        return time.monotonic() - runner.last_used

    async def _watch_idle(self, tick: float) -> None:
        """Unload engines idle for longer than their ``idle_unload_after``."""
        while True:
            await asyncio.sleep(tick)
            for name, policy in self.policies.items():
                after, runner = policy.idle_unload_after, self._runners[name]
                if after is None or self._idle_for(runner) < after:
                    continue
                async with self._lock:  # never while the engine or another one loads
                    if self._idle_for(runner) >= after:
                        await self._unload(runner, f"idle for {after:g} s", "idle")

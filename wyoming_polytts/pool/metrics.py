"""Prometheus metrics of the pool and of every request, in a registry of their own.

Each :class:`Metrics` has its own ``CollectorRegistry`` (never the global one),
so several servers in one process keep separate counts. Requests are counted
where both front doors meet (:func:`wyoming_polytts.speech.synthesis.speak`), labelled
with the front door they came through; the engines' state, memory and queues
are read from the pool whenever ``/metrics`` is scraped, as are the process's
own figures (prometheus-client's ``process_*``: memory, open file descriptors)
and its count of threads and asyncio tasks, which a leak would make grow.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .slot import EngineState, EngineStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Content type of :meth:`Metrics.render` (Prometheus text format 0.0.4)."""

_FIRST_AUDIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

Snapshot = Callable[[], Mapping[str, EngineStatus]]
"""Every engine's status by name, read at scrape time."""


class FrontDoor(StrEnum):
    """The door a request came through: the ``front_door`` label of its metrics."""

    WYOMING = "wyoming"
    OPENAI = "openai"


class Metrics:
    """The server's metrics; ``render()`` gives them in the Prometheus text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_count = Counter(
            "polytts_requests",
            "Synthesis requests that reached an engine, by how they ended "
            "(ok, cancelled, or the error code)",
            ["engine", "front_door", "outcome"],
            registry=self.registry,
        )
        self.first_audio = Histogram(
            "polytts_time_to_first_audio_seconds",
            "Seconds from a request reaching the pool (loading and queueing included) "
            "to its first audio",
            ["engine", "front_door"],
            buckets=_FIRST_AUDIO_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "polytts_real_time_factor",
            "Seconds spent synthesizing one sentence per second of its audio",
            ["engine"],
            buckets=_RTF_BUCKETS,
            registry=self.registry,
        )
        self.loads = Counter(
            "polytts_engine_loads",
            "Engine loads by outcome (loaded, failed, refused for memory)",
            ["engine", "outcome"],
            registry=self.registry,
        )
        self.unloads = Counter(
            "polytts_engine_unloads",
            "Engine unloads by reason (idle, memory, shutdown)",
            ["engine", "reason"],
            registry=self.registry,
        )
        self._heap_trims = Counter(
            "polytts_heap_trims",
            "Periodic heap trims (pool.heap_trim_interval)",
            registry=self.registry,
        )
        self._heap_trimmed_bytes = Counter(
            "polytts_heap_trimmed_bytes",
            "Resident memory the periodic heap trims gave back to the system",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(_RuntimeCollector())

    def watch(self, snapshot: Snapshot, budget: int | None) -> None:
        """Report the engines of ``snapshot`` (and the memory budget) at every scrape."""
        self.registry.register(_PoolCollector(snapshot, budget))

    def watch_clients(self, held: Callable[[], Mapping[str, int]]) -> None:
        """Report what clients hold open (``held()``: kind, such as ``connections``, to a
        count) at every scrape, as ``polytts_open_<kind>``."""
        self.registry.register(_ClientsCollector(held))

    def request(self, engine: str, front_door: FrontDoor) -> RequestMetrics:
        """Start timing one request; finish it with :meth:`RequestMetrics.finish`."""
        return RequestMetrics(self, engine, front_door)

    def loaded(self, engine: str, outcome: str) -> None:
        self.loads.labels(engine, outcome).inc()

    def unloaded(self, engine: str, reason: str) -> None:
        self.unloads.labels(engine, reason).inc()

    def heap_trimmed(self, freed: int) -> None:
        """One periodic heap trim gave ``freed`` bytes of resident memory back."""
        self._heap_trims.inc()
        self._heap_trimmed_bytes.inc(freed)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (see :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class RequestMetrics:
    """The measurements of one request, recorded as it goes."""

    def __init__(self, metrics: Metrics, engine: str, front_door: FrontDoor) -> None:
        self._metrics = metrics
        self._engine = engine
        self._front_door = front_door
        self._started = time.monotonic()
        self._audio_seen = False

    def audio(self) -> None:
        """Audio is going out; the first call records the time to first audio."""
        if not self._audio_seen:
            self._audio_seen = True
            elapsed = time.monotonic() - self._started
            self._metrics.first_audio.labels(self._engine, self._front_door).observe(elapsed)

    def sentence(self, elapsed: float | None, audio_seconds: float) -> None:
        """One sentence finished: ``elapsed`` seconds of work gave ``audio_seconds`` of audio."""
        if elapsed is not None and audio_seconds > 0:
            rtf = elapsed / audio_seconds
            self._metrics.real_time_factor.labels(self._engine).observe(rtf)

    def finish(self, outcome: str) -> None:
        self._metrics.request_count.labels(self._engine, self._front_door, outcome).inc()


class _PoolCollector(Collector):
    """Engine state, memory and queues, read from the pool at scrape time."""

    def __init__(self, snapshot: Snapshot, budget: int | None) -> None:
        self._snapshot = snapshot
        self._budget = budget

    def collect(self) -> Iterator[Metric]:
        statuses = self._snapshot()
        state = GaugeMetricFamily(
            "polytts_engine_state", "1 for the state each engine is in", labels=["engine", "state"]
        )
        memory = GaugeMetricFamily(
            "polytts_engine_memory_bytes",
            "Memory a loaded engine counts as holding (the larger of its measured load "
            "and memory_estimate); 0 when not loaded",
            labels=["engine"],
        )
        waiting = GaugeMetricFamily(
            "polytts_queue_depth", "Sentence jobs waiting for a worker", labels=["engine"]
        )
        running = GaugeMetricFamily(
            "polytts_running_jobs", "Sentence jobs being synthesized", labels=["engine"]
        )
        requests = GaugeMetricFamily(
            "polytts_active_requests", "Requests admitted to each engine", labels=["engine"]
        )
        stuck = GaugeMetricFamily(
            "polytts_stuck_jobs",
            "Sentence jobs past pool.job_timeout whose engine call has not returned",
            labels=["engine"],
        )
        replicas = GaugeMetricFamily(
            "polytts_engine_replicas",
            "Replicas of an engine placed on Ray, by state (RUNNING, STARTING...)",
            labels=["engine", "state"],
        )
        for name, status in statuses.items():
            for replica_state, count in (status.replicas or {}).items():
                replicas.add_metric([name, replica_state], float(count))
            for each in EngineState:
                state.add_metric([name, each.value], 1.0 if status.state is each else 0.0)
            held = status.memory if status.state is EngineState.LOADED else 0
            memory.add_metric([name], float(held or 0))
            waiting.add_metric([name], float(status.waiting))
            running.add_metric([name], float(status.running))
            requests.add_metric([name], float(status.requests))
            stuck.add_metric([name], float(status.stuck))
        yield from (state, memory, waiting, running, requests, stuck, replicas)
        if self._budget is not None:
            yield GaugeMetricFamily(
                "polytts_memory_budget_bytes",
                "The pool's memory budget (pool.gpu_memory_budget)",
                value=float(self._budget),
            )


class _ClientsCollector(Collector):
    """Connections and streams clients hold open (both front doors), at scrape time."""

    def __init__(self, held: Callable[[], Mapping[str, int]]) -> None:
        self._held = held

    def collect(self) -> Iterator[Metric]:
        for kind, count in self._held().items():
            yield GaugeMetricFamily(
                f"polytts_open_{kind}",
                f"{kind.capitalize()} clients hold open now (limits.max_{kind})",
                value=float(count),
            )


class _RuntimeCollector(Collector):
    """Threads and asyncio tasks of the process, counted at scrape time."""

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "polytts_threads", "Python threads alive", value=float(threading.active_count())
        )
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped outside the server's event loop
            return
        yield GaugeMetricFamily(
            "polytts_asyncio_tasks", "Asyncio tasks not yet done", value=float(tasks)
        )

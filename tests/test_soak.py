"""The soak (``bench/soak.py``) in short: 32 Wyoming and 16 HTTP clients, one-shot and
streaming, for 20 seconds after a short warm-up against the real server and its
embedded Piper voice. The full five minutes is ``make soak`` (docs/operations/reliability.md),
which checks resident memory within 5 %; here a short warm-up leaves the allocator
unsettled, so only a gross leak fails the memory check."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.server_figures import Holdings
from bench.soak import SoakResult, SoakSettings, run_soak
from bench.soak_clients import Tally

from .figures import record

SECONDS = 20.0
WARMUP = 15.0
"""Long enough for every ONNX Runtime session (Piper has four) to have grown its arena
for the longest sentences: after 5 s, growth of 6 to 19 % was seen in the next 20 s."""

RSS_GROWTH = 0.15
"""Bound on resident memory growth in this short run (the full soak: 5 %)."""


async def test_short_soak_serves_everyone_without_leaking(tmp_path: Path) -> None:
    settings = SoakSettings(seconds=SECONDS, warmup=WARMUP, kinds=("short",))
    result = await run_soak(settings, tmp_path)
    figures = result.to_json()
    for name in ("requests", "ok", "busy", "errors"):
        record("soak-short", name, figures["soak"][name])
    record("soak-short", "rss_growth_percent", figures["rss_growth_percent"])

    soak = result.soak
    assert soak.count("error") == 0 and result.warmup.count("error") == 0, soak.errors
    assert soak.count("busy") == 0, "every client fits pool.queue_size"
    served = {key.removesuffix(" ok") for key in soak.outcomes if key.endswith(" ok")}
    assert served == {
        "wyoming one-shot",
        "wyoming streaming",
        "http stream",
        "http whole",
        "http sse",
    }
    assert soak.audio_seconds > 0
    assert result.tracebacks == 0
    assert result.rss_growth <= RSS_GROWTH, figures
    assert [f for f in result.failures() if "memory" not in f] == []  # threads, tasks, fds


def test_a_long_soak_tells_growth_from_a_plateau() -> None:
    """The second-half checks on made-up samples: a plateau passes however far it rose
    after the warm-up (+8 % here); steady growth of 0.6 MiB per minute fails."""
    minutes = 60
    idle = Holdings(rss=500 * 2**20, fds=11, os_threads=20, threads=7, tasks=3)

    def run(mib_at: Callable[[float], float]) -> SoakResult:
        trend = [(t, int(mib_at(t / 60) * 2**20)) for t in range(30, minutes * 60 + 1, 30)]
        end = Holdings(trend[-1][1], 11, 20, 7, 3)
        settings = SoakSettings(seconds=minutes * 60, warmup=60)
        return SoakResult(settings, idle, idle, end, Tally(), Tally(), 0, {}, 8, trend)

    plateau = run(lambda m: 520 + 20 * (1 - math.exp(-m / 5)))
    assert plateau.slope is not None and abs(plateau.slope) < 0.05
    assert plateau.failures() == []
    growing = run(lambda m: 500 + 0.6 * m)  # +7 % over the hour, 3.5 % in the second half
    assert growing.slope == pytest.approx(0.6, abs=0.01)
    assert growing.failures() == [
        "resident memory rose 0.60 MiB/min over the second half",
        "resident memory moved 3.5% from its value at the midpoint",
    ]

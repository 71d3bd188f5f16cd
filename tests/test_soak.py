"""The soak (``bench/soak.py``) in short: 32 Wyoming and 16 HTTP clients, one-shot and
streaming, for 20 seconds after a short warm-up against the real server and its
embedded Piper voice. The full five minutes is ``make soak`` (README "Reliability"),
which checks resident memory within 5 %; here a short warm-up leaves the allocator
unsettled, so only a gross leak fails the memory check."""

from __future__ import annotations

from pathlib import Path

from bench.soak import SoakSettings, run_soak

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

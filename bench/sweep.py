"""One level of the concurrency sweep: N clients at once, describe probed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from .stats import percentile
from .wyoming_client import Measurement, one_shot, timed_describe

PROBE_START = 0.2
"""Seconds after the burst starts that the first describe probe goes out."""

PROBE_INTERVAL = 1.0
"""Seconds between describe probes (Home Assistant: 30); often enough to see stalls,
rarely enough not to slow the server it measures."""


@dataclass
class LevelRun:
    """One burst of simultaneous clients."""

    clients: int
    wall: float
    """Seconds from the first request sent to the last answer complete."""

    requests: list[Measurement]
    describe: list[float] = field(default_factory=list)
    """Seconds each describe probe took while the burst ran."""

    @property
    def audio(self) -> float:
        return sum(m.audio for m in self.requests)

    @property
    def throughput(self) -> float:
        """Audio seconds produced per wall-clock second."""
        return self.audio / self.wall if self.wall else 0.0

    @property
    def first_audio(self) -> list[float]:
        """Time to first audio of each request that succeeded."""
        return [m.ttfa for m in self.requests if m.ttfa is not None and not m.error]

    @property
    def stalls(self) -> list[float]:
        """Seconds each successful request's player would have waited after starting."""
        return [m.stall for m in self.requests if m.ttfa is not None and not m.error]

    def first_audio_percentile(self, q: float) -> float | None:
        return percentile(self.first_audio, q)

    @property
    def errors(self) -> int:
        return sum(1 for m in self.requests if m.error)


async def run_level(port: int, voice: str | None, texts: list[str], clients: int) -> LevelRun:
    """``clients`` one-shot requests at once (texts taken in turn), describe every second."""
    done = asyncio.Event()
    latencies: list[float] = []

    async def probe() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), PROBE_START)
        while not done.is_set():
            try:
                seconds, _ = await timed_describe(port)
            except (OSError, TimeoutError):
                seconds = float("inf")
            latencies.append(seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), PROBE_INTERVAL)

    started = time.perf_counter()
    requests = [one_shot(port, texts[i % len(texts)], voice) for i in range(clients)]
    prober = asyncio.create_task(probe())
    results = await asyncio.gather(*requests)
    wall = time.perf_counter() - started
    done.set()
    await prober
    return LevelRun(clients, wall, list(results), latencies)

"""Soak: 32 Wyoming and 16 HTTP clients for minutes against the real server; a leak shows
as resident memory that keeps growing under load.

``python -m bench.soak --minutes 5`` (``make soak``) runs the server on the embedded
Piper voice (``--kokoro``: Kokoro beside it, half the clients each) with the default
configuration, except that ``pool.queue_size`` admits every client and
``limits.max_streams_per_client`` admits every Wyoming client (they all come from one
address). It loads the server for a warm-up, measures it idle (resident memory, file
descriptors, threads, asyncio tasks), loads it for the soak sampling resident memory
every 30 s, measures it idle again and checks:

- no errors other than ``server-busy`` (the documented answer beyond ``pool.queue_size``),
  and no traceback in the server's log;
- resident memory within 5 % of the warm-up's; or, for soaks of 20 minutes or more,
  which can tell growth from a plateau wherever the warm-up happened to end: a
  least-squares slope under load over the second half under 0.5 MiB per minute, and
  every sample of the second half within 3 % of the one at the midpoint;
- no more asyncio tasks, at most a few more file descriptors, and no more Python
  threads than after the warm-up or than the pools' ceiling (asyncio's default
  executor adds threads on demand up to a fixed number).

It writes ``soak.json`` and ``soak.md`` (``--name``; default folder ``bench/results``)
and exits 1 when a check fails. ``tests/test_soak.py`` runs the same code briefly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from .machine import describe_machine, finish_machine
from .server_figures import Holdings, holdings, thread_ceiling, wait_idle
from .server_process import ServerProcess
from .soak_clients import Tally, run_clients

RESULTS_DIR = Path(__file__).parent / "results"

RSS_GROWTH = 0.05
"""Largest growth of resident memory from the warm-up to the end allowed."""

LONG_SOAK = 20 * 60.0
"""Seconds from which a soak is long enough to tell growth from a plateau: its second
half is then held to :data:`MAX_SLOPE` and :data:`SECOND_HALF_BAND` as well."""

MAX_SLOPE = 0.5
"""Largest slope of resident memory under load over the second half, MiB per minute."""

SECOND_HALF_BAND = 0.03
"""Largest distance of resident memory in the second half from its value at the
midpoint, as a share of that value."""

KOKORO_VOICE = "jf_alpha"
"""The voice half of the clients speak with when Kokoro runs beside Piper."""

FD_SLACK = 4
"""File descriptors the end may hold beyond the warm-up (sockets still closing)."""

TREND_EVERY = 30.0
"""Seconds between samples of resident memory under load (the trend in the report)."""


@dataclass(frozen=True)
class SoakSettings:
    """One soak run."""

    seconds: float
    warmup: float
    """Seconds of load before the reference measurement."""

    wyoming_clients: int = 32
    http_clients: int = 16

    kinds: tuple[str, ...] = ("short", "answer")
    """Kinds of benchmark text the clients speak (``bench/texts.py``)."""

    pool: dict[str, Any] = field(default_factory=dict)
    """The server's ``pool`` section; ``queue_size`` defaults to the number of clients."""

    kokoro: bool = False
    """Run Kokoro (its embedded int8 model) beside Piper; half the clients speak with it."""


@dataclass
class SoakResult:
    """What a soak run measured."""

    settings: SoakSettings
    start: Holdings
    warm: Holdings
    end: Holdings
    warmup: Tally
    soak: Tally
    tracebacks: int
    machine: dict[str, Any]
    thread_ceiling: int
    """The most Python threads the server may hold (see ``server_figures.thread_ceiling``)."""

    trend: list[tuple[float, int]] = field(default_factory=list)
    """(seconds into the soak, resident bytes) under load, every ``TREND_EVERY`` s."""

    @property
    def rss_growth(self) -> float:
        return (self.end.rss - self.warm.rss) / self.warm.rss

    @property
    def second_half(self) -> list[tuple[float, int]]:
        """The samples under load from the middle of the soak on."""
        return [(t, rss) for t, rss in self.trend if t >= self.settings.seconds / 2]

    @property
    def slope(self) -> float | None:
        """Least-squares slope of resident memory over the second half, MiB per minute;
        None with fewer than three samples there."""
        half = self.second_half
        if len(half) < 3:
            return None
        minutes = np.array([t for t, _ in half]) / 60
        mib = np.array([rss for _, rss in half]) / 2**20
        return float(np.polyfit(minutes, mib, 1)[0])

    @property
    def band(self) -> float | None:
        """The farthest resident memory got in the second half from its value at the
        midpoint, as a share of it; None without samples there."""
        half = self.second_half
        if not half:
            return None
        middle = half[0][1]
        return max(abs(rss - middle) for _, rss in half) / middle

    def failures(self) -> list[str]:
        """Each check that failed, in words; empty when all passed."""
        errors = self.warmup.count("error") + self.soak.count("error")
        found = {
            f"{errors} errors other than busy: {self.warmup.errors + self.soak.errors}": errors,
            f"{self.tracebacks} tracebacks in the server log": self.tracebacks,
            f"resident memory grew {self.rss_growth:.1%}": (
                not self._long and self.rss_growth > RSS_GROWTH
            ),
            f"resident memory rose {self.slope or 0:.2f} MiB/min over the second half": (
                self._long and (self.slope or 0) > MAX_SLOPE
            ),
            f"resident memory moved {self.band or 0:.1%} from its value at the midpoint": (
                self._long and (self.band or 0) > SECOND_HALF_BAND
            ),
            f"threads {self.warm.threads} -> {self.end.threads}": self.end.threads
            > max(self.warm.threads, self.thread_ceiling),
            f"tasks {self.warm.tasks} -> {self.end.tasks}": self.end.tasks > self.warm.tasks,
            f"file descriptors {self.warm.fds} -> {self.end.fds}": self.end.fds
            > self.warm.fds + FD_SLACK,
        }
        return [text for text, failed in found.items() if failed]

    @property
    def _long(self) -> bool:
        return self.settings.seconds >= LONG_SOAK

    def to_json(self) -> dict[str, Any]:
        def tally(t: Tally) -> dict[str, Any]:
            return {
                "requests": sum(t.outcomes.values()),
                "ok": t.count("ok"),
                "busy": t.count("busy"),
                "errors": t.count("error"),
                "audio_seconds": round(t.audio_seconds, 1),
                "by_kind": dict(sorted(t.outcomes.items())),
                "error_samples": t.errors,
            }

        return {
            "seconds": self.settings.seconds,
            "warmup_seconds": self.settings.warmup,
            "wyoming_clients": self.settings.wyoming_clients,
            "http_clients": self.settings.http_clients,
            "pool": {
                "queue_size": self.settings.wyoming_clients + self.settings.http_clients,
                **self.settings.pool,
            },
            "warmup": tally(self.warmup),
            "soak": tally(self.soak),
            "start": self.start.to_json(),
            "after_warmup": self.warm.to_json(),
            "end": self.end.to_json(),
            "rss_growth_percent": round(100 * self.rss_growth, 2),
            "second_half_slope_mib_per_min": None if self.slope is None else round(self.slope, 3),
            "second_half_band_percent": None if self.band is None else round(100 * self.band, 2),
            "kokoro": self.settings.kokoro,
            "rss_under_load_mib": [[round(t), round(rss / 2**20, 1)] for t, rss in self.trend],
            "tracebacks": self.tracebacks,
            "failures": self.failures(),
            "machine": self.machine,
        }


async def run_soak(settings: SoakSettings, work_dir: Path) -> SoakResult:
    """Start a server in ``work_dir``, warm it up, soak it, measure it; stop it."""
    clients = settings.wyoming_clients + settings.http_clients
    config: dict[str, Any] = {
        "pool": {"queue_size": clients, **settings.pool},
        # Every client comes from 127.0.0.1: one address, as many streams as clients.
        "limits": {"max_streams_per_client": settings.wyoming_clients},
    }
    voices: tuple[str | None, ...] = (None,)
    if settings.kokoro:
        config["engines"] = {"piper": {}, "kokoro": {}}
        voices = (None, KOKORO_VOICE)
    machine = describe_machine()
    service = ServerProcess(work_dir, config)
    http_port = service.http_port
    service.spawn()
    try:
        await service.wait_ready()
        await wait_idle(http_port)
        start = await holdings(service.pid, http_port)
        load = (service.port, http_port, settings.wyoming_clients, settings.http_clients)
        warmup = await run_clients(*load, settings.kinds, settings.warmup, voices)
        ceiling = thread_ceiling(await wait_idle(http_port))
        warm = await holdings(service.pid, http_port)
        trend: list[tuple[float, int]] = []
        sampler = asyncio.create_task(_sample_rss(service.pid, trend))
        try:
            soak = await run_clients(*load, settings.kinds, settings.seconds, voices)
        finally:
            sampler.cancel()
        await wait_idle(http_port)
        end = await holdings(service.pid, http_port)
    finally:
        service.stop()
    finish_machine(machine)
    tracebacks = service.log().count("Traceback")
    return SoakResult(settings, start, warm, end, warmup, soak, tracebacks, machine, ceiling, trend)


async def _sample_rss(pid: int, trend: list[tuple[float, int]]) -> None:
    process, started = psutil.Process(pid), time.monotonic()
    while True:
        await asyncio.sleep(TREND_EVERY)
        trend.append((time.monotonic() - started, process.memory_info().rss))


def render(result: SoakResult) -> str:
    """The run as a Markdown table."""
    data = result.to_json()
    soak, start, warm, end = data["soak"], data["start"], data["after_warmup"], data["end"]
    mib = 2**20
    engines = "Piper and Kokoro (half the clients each)" if data["kokoro"] else "Piper"
    rows = [
        ("Engines", engines),
        ("Clients", f"{data['wyoming_clients']} Wyoming + {data['http_clients']} HTTP"),
        ("pool.queue_size", str(data["pool"].get("queue_size"))),
        ("Duration", f"{data['seconds'] / 60:g} min after {data['warmup_seconds']:g} s warm-up"),
        ("Requests (ok / busy / errors)", f"{soak['ok']} / {soak['busy']} / {soak['errors']}"),
        ("Audio received", f"{soak['audio_seconds']:.0f} s (Wyoming and raw PCM)"),
        (
            "Resident memory: start / after warm-up / end",
            f"{start['rss'] / mib:.0f} / {warm['rss'] / mib:.0f} / {end['rss'] / mib:.0f} MiB "
            f"({data['rss_growth_percent']:+.1f} %)",
        ),
    ]
    for key, name in (("threads", "Python threads"), ("tasks", "Asyncio tasks")):
        rows.append((f"{name}: after warm-up / end", f"{warm[key]} / {end[key]}"))
    rows.append(("Open file descriptors: after warm-up / end", f"{warm['fds']} / {end['fds']}"))
    under_load = ", ".join(f"{mib:.0f}" for _, mib in data["rss_under_load_mib"])
    rows.append((f"Resident memory under load, every {TREND_EVERY:g} s (MiB)", under_load))
    slope, band = data["second_half_slope_mib_per_min"], data["second_half_band_percent"]
    rows.append(
        (
            "Second half: slope / farthest from the midpoint",
            f"{_figure(slope, ' MiB/min')} / {_figure(band, ' %')}",
        )
    )
    rows.append(("Tracebacks in the server log", str(data["tracebacks"])))
    rows.append(("Load average (start / end)", _load(data["machine"])))
    verdict = "; ".join(data["failures"]) or "all checks passed"
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"# Soak\n\n| Figure | Value |\n|---|---|\n{table}\n\nResult: {verdict}\n"


def _figure(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:+.2f}{unit}"


def _load(machine: dict[str, Any]) -> str:
    return f"{machine['load average at start']} / {machine['load average at end']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="soak length (default 5)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--wyoming-clients", type=int, default=32)
    parser.add_argument("--http-clients", type=int, default=16)
    parser.add_argument(
        "--queue-size", type=int, help="pool.queue_size (default: the number of clients)"
    )
    parser.add_argument(
        "--kokoro", action="store_true", help="run Kokoro beside Piper (half the clients)"
    )
    parser.add_argument("--name", default="soak", help="file name of the results")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    args = parser.parse_args(argv)
    settings = SoakSettings(
        seconds=args.minutes * 60,
        warmup=args.warmup,
        wyoming_clients=args.wyoming_clients,
        http_clients=args.http_clients,
        pool={} if args.queue_size is None else {"queue_size": args.queue_size},
        kokoro=args.kokoro,
    )
    with tempfile.TemporaryDirectory(prefix="polytts-soak-") as work:
        try:
            result = asyncio.run(run_soak(settings, Path(work)))
        except (RuntimeError, TimeoutError, OSError) as err:
            print(f"soak: {err}", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    report = render(result)
    (args.out / f"{args.name}.md").write_text(report, encoding="utf-8")
    raw = json.dumps(result.to_json(), indent=1)
    (args.out / f"{args.name}.json").write_text(raw + "\n", encoding="utf-8")
    print(report)
    print(f"soak: wrote {args.out / args.name}.md and .json", file=sys.stderr)
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak: 32 Wyoming and 16 HTTP clients for minutes against the real server; a leak shows
as growth between the end of the warm-up and the end of the soak.

``python -m bench.soak --minutes 5`` (``make soak``) runs the server on the embedded
Piper voice with the default configuration, except that ``pool.queue_size`` admits
every client (with the default 32, the clients that just finished a request keep
re-taking the free places and the others get nothing but ``server-busy``), and that
``limits.max_streams_per_client`` admits every Wyoming client (they all come from one
address). It loads
the server for a warm-up, measures it idle (resident memory, file descriptors,
threads, asyncio tasks), loads it for the soak, measures it idle again and checks:

- no errors other than ``server-busy`` (the documented answer beyond ``pool.queue_size``),
  and no traceback in the server's log;
- resident memory within 5 % of the warm-up's;
- no more asyncio tasks, at most a few more file descriptors, and no more Python
  threads than after the warm-up or than the pools' ceiling (asyncio's default
  executor adds threads on demand up to a fixed number).

It writes ``soak.json`` and ``soak.md`` (default ``bench/results``) and exits 1 when a
check fails. ``tests/test_soak.py`` runs the same code for half a minute.
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

import psutil

from .machine import describe_machine, finish_machine
from .server_figures import Holdings, holdings, thread_ceiling, wait_idle
from .server_process import ServerProcess
from .soak_clients import Tally, run_clients

RESULTS_DIR = Path(__file__).parent / "results"

RSS_GROWTH = 0.05
"""Largest growth of resident memory from the warm-up to the end allowed."""

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

    def failures(self) -> list[str]:
        """Each check that failed, in words; empty when all passed."""
        errors = self.warmup.count("error") + self.soak.count("error")
        found = {
            f"{errors} errors other than busy: {self.warmup.errors + self.soak.errors}": errors,
            f"{self.tracebacks} tracebacks in the server log": self.tracebacks,
            f"resident memory grew {self.rss_growth:.1%}": self.rss_growth > RSS_GROWTH,
            f"threads {self.warm.threads} -> {self.end.threads}": self.end.threads
            > max(self.warm.threads, self.thread_ceiling),
            f"tasks {self.warm.tasks} -> {self.end.tasks}": self.end.tasks > self.warm.tasks,
            f"file descriptors {self.warm.fds} -> {self.end.fds}": self.end.fds
            > self.warm.fds + FD_SLACK,
        }
        return [text for text, failed in found.items() if failed]

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
            "rss_under_load_mib": [[round(t), round(rss / 2**20, 1)] for t, rss in self.trend],
            "tracebacks": self.tracebacks,
            "failures": self.failures(),
            "machine": self.machine,
        }


async def run_soak(settings: SoakSettings, work_dir: Path) -> SoakResult:
    """Start a server in ``work_dir``, warm it up, soak it, measure it; stop it."""
    clients = settings.wyoming_clients + settings.http_clients
    config = {
        "pool": {"queue_size": clients, **settings.pool},
        # Every client comes from 127.0.0.1: one address, as many streams as clients.
        "limits": {"max_streams_per_client": settings.wyoming_clients},
    }
    machine = describe_machine()
    service = ServerProcess(work_dir, config)
    http_port = service.http_port
    service.spawn()
    try:
        await service.wait_ready()
        await wait_idle(http_port)
        start = await holdings(service.pid, http_port)
        load = (service.port, http_port, settings.wyoming_clients, settings.http_clients)
        warmup = await run_clients(*load, settings.kinds, settings.warmup)
        ceiling = thread_ceiling(await wait_idle(http_port))
        warm = await holdings(service.pid, http_port)
        trend: list[tuple[float, int]] = []
        sampler = asyncio.create_task(_sample_rss(service.pid, trend))
        try:
            soak = await run_clients(*load, settings.kinds, settings.seconds)
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
    rows = [
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
    rows.append(("Tracebacks in the server log", str(data["tracebacks"])))
    rows.append(("Load average (start / end)", _load(data["machine"])))
    verdict = "; ".join(data["failures"]) or "all checks passed"
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"# Soak\n\n| Figure | Value |\n|---|---|\n{table}\n\nResult: {verdict}\n"


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
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    args = parser.parse_args(argv)
    settings = SoakSettings(
        seconds=args.minutes * 60,
        warmup=args.warmup,
        wyoming_clients=args.wyoming_clients,
        http_clients=args.http_clients,
        pool={} if args.queue_size is None else {"queue_size": args.queue_size},
    )
    with tempfile.TemporaryDirectory(prefix="polytts-soak-") as work:
        try:
            result = asyncio.run(run_soak(settings, Path(work)))
        except (RuntimeError, TimeoutError, OSError) as err:
            print(f"soak: {err}", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    report = render(result)
    (args.out / "soak.md").write_text(report, encoding="utf-8")
    raw = json.dumps(result.to_json(), indent=1)
    (args.out / "soak.json").write_text(raw + "\n", encoding="utf-8")
    print(report)
    print(f"soak: wrote {args.out / 'soak.md'} and soak.json", file=sys.stderr)
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())

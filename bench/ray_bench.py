"""The Ray benchmark: Piper in the server's own process, in one Ray replica on a second
node, and in two replicas on two nodes, all on this machine and in the same run.

``python -m bench.ray_bench`` (``make bench-ray``) must run inside a network namespace
with only loopback, as the Ray tests do (Ray binds every interface). A cluster of two
nodes is started (:mod:`.ray_cluster`) and three servers beside it, each running the
embedded Piper voice with two sentences at once: ``concurrency: 2`` in-process, one
replica taking two, or two replicas taking one each. Every round, in an order that
flips, each takes a burst of 1 and of 8 clients sending an answer (two or three
sentences): time to first audio and throughput, as the main benchmark's sweep
measures them. Differences to in-process are medians of back-to-back pairs. Results
go to ``ray.md`` and ``ray.json`` in the results folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .formatting import DASH, ms, table, times
from .ray_cluster import LocalCluster, loopback_only
from .server_process import ServerProcess
from .stats import median
from .sweep import run_level
from .texts import TEXTS
from .wyoming_client import one_shot

RESULTS_DIR = Path(__file__).parent / "results"
VOICE = "en_US-joe-medium"
IN_PROCESS = "in-process"
LEVELS = (1, 8)
GOAL_FIRST_AUDIO = 0.025
"""Seconds of first audio Ray may add to in-process."""

GOAL_THROUGHPUT = 0.9
"""Share of in-process throughput Ray must keep at 8 clients."""


def _on_ray(replicas: int, each: int, resources: dict[str, float]) -> dict[str, Any]:
    """Piper in ``replicas`` replicas, each working on ``each`` sentences at a time with
    ``each`` threads (so two replicas together use the machine's two cores)."""
    ray = {"num_replicas": replicas, "num_cpus": each, "resources": resources}
    return {"concurrency": each, "placement": "ray", "ray": ray}


SYSTEMS: dict[str, dict[str, Any]] = {
    IN_PROCESS: {"concurrency": 2},
    "one replica (second node)": _on_ray(1, 2, {"box_b": 1}),
    "two replicas (two nodes)": _on_ray(2, 1, {"slot": 1}),
}
"""The ``engines.piper`` section of each server: Piper works on two sentences at once in
every one, with the machine's two cores."""


@dataclass
class Figures:
    """One system's bursts at one client count, a value per round."""

    first_audio: list[float | None] = field(default_factory=list)
    """Median time to first audio of each burst, seconds."""

    throughput: list[float] = field(default_factory=list)
    """Audio seconds per wall-clock second of each burst."""

    errors: list[str] = field(default_factory=list)


async def _measure(servers: dict[str, ServerProcess], rounds: int) -> dict[str, dict[int, Figures]]:
    texts = [t.text for t in TEXTS if t.kind == "answer"]
    figures = {name: {level: Figures() for level in LEVELS} for name in servers}
    for server in servers.values():  # warm up: first sessions, first sentences
        await one_shot(server.port, texts[0], VOICE)
    for round_ in range(rounds):
        order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
        for name in order:
            for level in LEVELS:
                run = await run_level(servers[name].port, VOICE, texts, level)
                each = figures[name][level]
                each.first_audio.append(run.first_audio_percentile(50))
                each.throughput.append(run.throughput)
                each.errors += [m.error for m in run.requests if m.error]
        print(f"round {round_ + 1} of {rounds} done", file=sys.stderr)
    return figures


def _paired(ours: list[Any], base: list[Any], op: Any) -> float | None:
    pairs = [op(a, b) for a, b in zip(ours, base, strict=True) if a is not None and b]
    return median(pairs)


def summarize(figures: dict[str, dict[int, Figures]]) -> dict[str, Any]:
    """Medians per system and client count, and the paired comparison to in-process."""
    base = figures[IN_PROCESS]
    out: dict[str, Any] = {}
    for name, levels in figures.items():
        out[name] = {}
        for level, each in levels.items():
            out[name][level] = {
                "first_audio": median(each.first_audio),
                "throughput": median(each.throughput),
                "errors": len(each.errors),
                "error_examples": sorted(set(each.errors))[:3],
                "first_audio_added": _paired(
                    each.first_audio, base[level].first_audio, lambda a, b: a - b
                ),
                "throughput_ratio": _paired(
                    each.throughput, base[level].throughput, lambda a, b: a / b
                ),
            }
    return out


def render(
    summary: dict[str, Any], memory: dict[str, float], ready: dict[str, float], rounds: int
) -> str:
    rows = []
    for name, levels in summary.items():
        for level, each in levels.items():
            added = each["first_audio_added"]
            rows.append(
                [
                    name,
                    str(level),
                    ms(each["first_audio"]),
                    DASH if name == IN_PROCESS else _signed_ms(added),
                    times(each["throughput"]),
                    DASH if name == IN_PROCESS else times(each["throughput_ratio"]),
                    str(each["errors"]),
                ]
            )
    header = ["System", "Clients", "First audio p50 (ms)", "Added (ms)"]
    header += ["Throughput (audio s/s)", "Of in-process", "Errors"]
    lines = ["# Piper on Ray", "", f"{rounds} rounds; medians, pairs back to back.", ""]
    lines += table(header, rows)
    lines += ["Goals (each Ray system against in-process):", ""]
    lines += [f"- {goal}" for goal in goals(summary)] + [""]
    lines += ["Seconds from starting a server until it is ready (Piper loaded):", ""]
    lines += table(["System", "Seconds"], [[k, f"{v:.1f}"] for k, v in ready.items()])
    lines += ["Resident memory after the run (MiB):", ""]
    lines += table(["Process group", "MiB"], [[k, f"{v:.0f}"] for k, v in memory.items()])
    return "\n".join(lines)


def _signed_ms(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds * 1000:+.0f}"


def goals(summary: dict[str, Any]) -> list[str]:
    """The issue's goals, met or not, per Ray system."""
    verdicts = []
    for name, levels in summary.items():
        if name == IN_PROCESS:
            continue
        for level in LEVELS:
            added = levels[level]["first_audio_added"]
            met = added is not None and added <= GOAL_FIRST_AUDIO
            verdicts.append(
                f"{name}, {level} client(s): first audio {_signed_ms(added)} ms "
                f"(goal at most +{GOAL_FIRST_AUDIO * 1000:.0f}): {'met' if met else 'not met'}"
            )
        ratio = levels[max(LEVELS)]["throughput_ratio"]
        met = ratio is not None and ratio >= GOAL_THROUGHPUT
        verdicts.append(
            f"{name}, {max(LEVELS)} clients: throughput {times(ratio)} of in-process "
            f"(goal at least {GOAL_THROUGHPUT}): {'met' if met else 'not met'}"
        )
    return verdicts


def _memory(cluster: LocalCluster) -> dict[str, float]:
    """Resident memory of the replicas of each system and of the rest of the cluster."""
    replicas: dict[str, float] = {}
    rest = 0.0
    sessions = {node.process.pid for node in cluster.nodes}
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        try:
            if os.getsid(process.pid) not in sessions:
                continue
        except OSError:
            continue
        cmdline = " ".join(process.info["cmdline"] or [])
        rss = process.info["memory_info"].rss / 2**20
        if "ServeReplica:" in cmdline:
            app = cmdline.split("ServeReplica:", 1)[1].split(":", 1)[0]
            replicas[f"replicas of {app}"] = replicas.get(f"replicas of {app}", 0.0) + rss
        else:
            rest += rss
    return {**replicas, "the cluster's own processes (two nodes, Serve controller)": rest}


async def run(rounds: int, work: Path) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    cluster = LocalCluster(head_resources={"slot": 1}, node_resources={"slot": 1, "box_b": 1})
    servers: dict[str, ServerProcess] = {}
    ready: dict[str, float] = {}
    """Seconds from starting each server until it answered with Piper loaded."""
    with cluster:
        try:
            for index, (name, piper) in enumerate(SYSTEMS.items()):
                config = {
                    "ray": {"address": cluster.address, "namespace": f"bench{index}"},
                    "engines": {"piper": piper},
                }
                folder = work / f"server{index}"
                folder.mkdir()
                server = ServerProcess(folder, config)
                started = time.perf_counter()
                await asyncio.to_thread(server.start)
                ready[name] = time.perf_counter() - started
                servers[name] = server
            figures = await _measure(servers, rounds)
            memory = _memory(cluster)
        finally:
            for server in servers.values():
                server.stop()
    return summarize(figures), memory, ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    args = parser.parse_args(argv)
    if not loopback_only():
        print("ray_bench: run inside a network namespace with only loopback", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="polytts-ray-bench-") as work:
        summary, memory, ready = asyncio.run(run(args.rounds, Path(work)))
    report = render(summary, memory, ready, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray.md").write_text(report + "\n", encoding="utf-8")
    data = {"rounds": args.rounds, "summary": summary, "memory_mib": memory, "ready_s": ready}
    (args.out / "ray.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

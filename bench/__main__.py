"""Command line: ``python -m bench [--quick] [--config PATH] ...`` (``make bench``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from wyoming_polytts.errors import ConfigError

from .chart import write_chart
from .report import render, render_machine
from .services import DEFAULT_VENV
from .suite import BenchSettings, run_bench

RESULTS_DIR = Path(__file__).parent / "results"
"""Where full runs publish (committed)."""

QUICK_DIR = Path(tempfile.gettempdir()) / "wyoming-polytts-bench"
"""Where quick runs write unless told otherwise (their numbers are not for publishing)."""


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def _levels(text: str) -> list[int]:
    try:
        levels = sorted({int(part) for part in text.split(",")})
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4,8, got {text!r}") from err
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("client counts must be 1 or more")
    return levels


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure wyoming-polytts over Wyoming (and its OpenAI endpoint), "
        "side by side with wyoming-piper and the in-process Piper engine.",
    )
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), help="server config")
    parser.add_argument("--quick", action="store_true", help="one text per kind, one round")
    parser.add_argument("--rounds", type=int, help="repetitions (default 5, quick 1)")
    parser.add_argument(
        "--clients", type=_levels, default=[1, 2, 4, 8, 16, 32], help="e.g. 1,2,4,8,16,32"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_override,
        default=[],
        metavar="KEY=VALUE",
        help="override a config key for this run, e.g. --set pool.threads=1",
    )
    parser.add_argument("--voice", action="append", default=[], help="voice to measure")
    parser.add_argument("--no-wyoming-piper", action="store_true", help="skip wyoming-piper")
    parser.add_argument("--no-floor", action="store_true", help="skip the in-process engine")
    parser.add_argument(
        "--no-unload", action="store_true", help="skip the memory after idle unloading"
    )
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="wyoming-piper's venv")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="s between chunks")
    parser.add_argument(
        "--out", type=Path, help=f"results folder (default {RESULTS_DIR}; quick: {QUICK_DIR})"
    )
    parser.add_argument("--name", default="results", help="file name of the results")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = BenchSettings(
        config=args.config.resolve(),
        quick=args.quick,
        rounds=args.rounds or (1 if args.quick else 5),
        levels=args.clients,
        overrides=dict(args.overrides),
        voices=args.voice,
        wyoming_piper=not args.no_wyoming_piper,
        floor=not args.no_floor,
        unload=not args.no_unload,
        venv=args.venv,
        chunk_delay=args.chunk_delay,
    )
    out: Path = args.out or (QUICK_DIR if args.quick else RESULTS_DIR)
    try:
        results = asyncio.run(run_bench(settings))
    except (ConfigError, RuntimeError, TimeoutError, ValueError, OSError) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    report = render(results)
    (out / f"{args.name}.md").write_text(report + "\n", encoding="utf-8")
    (out / "machine.md").write_text(render_machine(results) + "\n", encoding="utf-8")
    raw = json.dumps(results.to_json(), indent=1)
    (out / f"{args.name}.json").write_text(raw + "\n", encoding="utf-8")
    write_chart(results, out / f"{args.name}.png")
    print(report)
    print(f"\nbench: wrote {out / args.name}.md, .json, .png and machine.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

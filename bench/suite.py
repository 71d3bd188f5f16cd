"""A whole benchmark run: servers up, single-client cases and the sweep, alternated.

Every measurement is repeated per round, and within a round the systems take
turns in an order that flips each round, so machine drift touches all of them.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wyoming.info import Info

from wyoming_polytts.config import Config, load_config

from .floor import PiperFloor, embedded_voice_dir
from .machine import describe_machine, finish_machine
from .memory import MemorySampler
from .openai_http import listening, measure_openai
from .results import FLOOR, ONE_SHOT, OURS, STREAMING, THEIRS, Level, RunResults, Single, VoiceRun
from .server_process import ServerProcess, WyomingProcess
from .services import (
    DEFAULT_VENV,
    derived_config,
    ensure_wyoming_piper,
    installed_version,
    wyoming_piper_process,
)
from .sweep import run_level
from .texts import TEXTS, Text, stream_plan, texts_for
from .unload import measure_unload
from .wyoming_client import Measurement, describe, one_shot, streamed

EMBEDDED_VOICE = "en_US-joe-medium"
"""The voice wyoming-piper and the in-process floor serve beside ours."""


@dataclass
class BenchSettings:
    """What to run; see ``python -m bench --help``."""

    config: Path
    quick: bool = False
    rounds: int = 5
    levels: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted config keys set for this run (e.g. ``pool.threads``)."""

    voices: list[str] = field(default_factory=list)
    """Voices to measure; empty: one per enabled engine."""

    wyoming_piper: bool = True
    floor: bool = True
    unload: bool = True
    """Measure the memory idle unloading gives back (a server of its own, at the end)."""

    venv: Path = DEFAULT_VENV
    chunk_delay: float = 0.05
    """Seconds between streamed text chunks (an LLM writing about 60 words/s)."""


def _turns(systems: Sequence[str], round_: int) -> list[str]:
    return list(systems) if round_ % 2 == 0 else list(reversed(systems))


def pick_voices(info: Info, default_voice: str | None, wanted: list[str]) -> dict[str, str]:
    """Voice to measure per engine, read from describe (each voice names its engine)."""
    by_engine: dict[str, list[str]] = {}
    for program in info.tts:
        for voice in program.voices:
            if voice.installed and voice.description and voice.description.endswith("]"):
                engine = voice.description.rsplit("[", 1)[1].rstrip("]")
                by_engine.setdefault(engine, []).append(voice.name)
    if wanted:
        picked = {e: v for e, names in by_engine.items() for v in names if v in wanted}
        missing = set(wanted) - set(picked.values())
        if missing:
            raise ValueError(f"voices not offered by the server: {', '.join(sorted(missing))}")
        return picked
    return {
        engine: default_voice if default_voice in names else names[0]
        for engine, names in by_engine.items()
    }


class _Run:
    """One run in progress: the servers' ports, the floor, the results being filled in."""

    def __init__(self, settings: BenchSettings, results: RunResults, ports: dict[str, int]) -> None:
        self.settings = settings
        self.results = results
        self.ports = ports
        self.floor: PiperFloor | None = None
        self.texts = texts_for(settings.quick)
        self.answers = [t.text for t in self.texts if t.kind == "answer"]

    async def measure(self, voice_run: VoiceRun) -> None:
        """Single-client cases, then the sweep, each round alternating the systems."""
        servers = [s for s in voice_run.systems if s != FLOOR]
        for system in servers:  # loads the voice; a server that cannot speak stops the run
            warm = await one_shot(self.ports[system], "Warm up.", _voice(voice_run, system))
            if warm.error:
                raise RuntimeError(f"{system} cannot speak with {voice_run.voice}: {warm.error}")
        rounds = self.settings.rounds
        for round_ in range(rounds):
            progress(f"{voice_run.voice}, single client, round {round_ + 1}/{rounds}")
            for text in self.texts:
                for system in _turns(voice_run.systems, round_):
                    await self._single(voice_run, system, text, round_)
        for clients in self.settings.levels:
            progress(f"{voice_run.voice}, {clients} simultaneous clients")
            for round_ in range(rounds):
                for system in _turns(servers, round_):
                    port, voice = self.ports[system], _voice(voice_run, system)
                    burst = await run_level(port, voice, self.answers, clients)
                    voice_run.levels.append(Level(system, round_, burst))

    async def _single(self, voice_run: VoiceRun, system: str, text: Text, r: int) -> None:
        def record(mode: str, result: Measurement) -> None:
            voice_run.singles.append(Single(system, text.kind, TEXTS.index(text), mode, r, result))

        if system == FLOOR:
            assert self.floor is not None
            record(ONE_SHOT, self.floor.measure(text.text))
            return
        port, voice = self.ports[system], _voice(voice_run, system)
        record(ONE_SHOT, await one_shot(port, text.text, voice))
        plan = stream_plan(text.text)
        record(STREAMING, await streamed(port, plan, voice, self.settings.chunk_delay))

    async def measure_openai(self, voice_run: VoiceRun, port: int, api_key: str | None) -> None:
        if not listening(port):
            self.results.notes.append(
                "OpenAI endpoint not measured: nothing listened on openai.port "
                "(openai.enabled is false)."
            )
            return
        progress(f"{voice_run.voice}, OpenAI endpoint")
        voice_run.openai = await measure_openai(
            port, voice_run.voice, self.answers, self.settings.rounds, api_key
        )


def progress(message: str) -> None:
    """Progress on stderr; stdout carries the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _voice(voice_run: VoiceRun, system: str) -> str:
    return voice_run.voice if system == OURS else EMBEDDED_VOICE


def _systems(engine: str, voice: str, ports: dict[str, int], settings: BenchSettings) -> list[str]:
    systems = [OURS]
    if engine == "piper" and voice.split(":")[-1] == EMBEDDED_VOICE:
        systems += [THEIRS] if THEIRS in ports else []
        systems += [FLOOR] if settings.floor else []
    return systems


def _start_services(
    settings: BenchSettings, config: Config, ours: ServerProcess, logs: Path
) -> list[WyomingProcess]:
    """Ours always; wyoming-piper beside it when Piper is enabled and the embedded voice exists."""
    services: list[WyomingProcess] = [ours]
    embedded = embedded_voice_dir()
    if settings.wyoming_piper and embedded is not None and "piper" in enabled_engines(config):
        venv = ensure_wyoming_piper(settings.venv)
        services.append(wyoming_piper_process(venv, embedded, EMBEDDED_VOICE, logs))
    for service in services:
        service.spawn()
    return services


def enabled_engines(config: Config) -> list[str]:
    return [name for name, options in config.engine_options.items() if options.enabled]


async def run_bench(settings: BenchSettings) -> RunResults:
    """Start the servers, measure every voice, stop everything; return the results."""
    record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
    results = RunResults(describe_machine(), record)
    overrides = {"wyoming.zeroconf": False, **settings.overrides}
    with (
        tempfile.TemporaryDirectory(prefix="polytts-bench-") as tmp,
        derived_config(settings.config, overrides) as config_path,
    ):
        config = load_config(config_path)
        source = ["--config", str(config_path)]
        ours = ServerProcess(Path(tmp), source=source, http=config.settings.openai.enabled)
        services = _start_services(settings, config, ours, Path(tmp))
        samplers = {s.name: MemorySampler(s.pid).start() for s in services}
        try:
            await asyncio.gather(*(s.wait_ready() for s in services))
            run = _Run(settings, results, {s.name: s.port for s in services})
            if THEIRS in run.ports:
                python = settings.venv / "bin" / "python"
                results.machine[THEIRS] = installed_version(python, THEIRS)
            info = await describe(ours.port)
            keys = config.settings.openai.api_keys
            for engine, voice in pick_voices(
                info, config.settings.default_voice, settings.voices
            ).items():
                voice_run = VoiceRun(engine, voice, _systems(engine, voice, run.ports, settings))
                if FLOOR in voice_run.systems and run.floor is None:
                    run.floor = PiperFloor(config, EMBEDDED_VOICE)
                results.voices.append(voice_run)
                await run.measure(voice_run)
                await run.measure_openai(voice_run, ours.http_port, keys[0] if keys else None)
        finally:
            for service in services:
                samplers[service.name].stop()
                results.memory[service.name] = {
                    "peak_rss": samplers[service.name].peak_rss,
                    "peak_gpu": samplers[service.name].peak_gpu,
                }
                service.stop()
    if settings.unload:
        progress("memory given back by idle unloading")
        with tempfile.TemporaryDirectory(prefix="polytts-unload-") as tmp:
            engines = enabled_engines(load_config(settings.config))
            results.unload = await measure_unload(settings.config, overrides, engines, Path(tmp))
    finish_machine(results.machine)
    return results

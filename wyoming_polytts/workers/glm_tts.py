"""``python -m wyoming_polytts.workers.glm_tts``: GLM-TTS as a Wyoming server on stdin/stdout.

Runs inside the GLM-TTS environment (its own venv and checkout), started and
supervised by the main server's ``glm_tts`` engine. It loads the model once,
then answers ``describe`` with the voice library's voices allowed for glm_tts
and ``synthesize`` with audio at the model's rate, piece by piece. A voice's
prompt features are computed on first use and kept while its recording and
transcript stay the same. Whatever GLM-TTS prints goes to stderr (the main
server logs it): stdout carries Wyoming events only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize

from .. import __version__
from ..common.audio import to_int16
from ..common.file_cache import FileKey, file_key
from ..common.reference_voice import ReferenceVoice
from ..const import CHANNELS, SAMPLE_WIDTH
from ..errors import InvalidRequestError, InvalidTextError, PolyttsError, VoiceNotFoundError
from ..library.library import VoiceLibrary
from ..library.reference_audio import AudioLimits
from .glm_tts_model import ModelFactory, ModelLoadError, ModelSettings, SpeechModel

_LOGGER = logging.getLogger("glm_tts_worker")
T = TypeVar("T")

ENGINE = "glm_tts"
"""The engine name voices of the library are filtered by (``engines:`` in voice.yaml)."""

DEFAULT_MODEL = "wyoming_polytts.workers.glm_tts_model:load_glm_tts"
_ATTRIBUTION = Attribution(name="Zhipu AI (GLM-TTS)", url="https://github.com/zai-org/GLM-TTS")
_LANGUAGES = ["zh_CN", "en_US"]
"""Advertised for a voice whose voice.yaml names no language."""

_READ_ONLY = AudioLimits(rate=24000, min_seconds=0.0, max_seconds=math.inf, max_bytes=0)
"""The worker only reads the voice library; these limits apply to adding voices."""


class PromptCache:
    """Prompt features per voice, kept while its recording and transcript stay the same."""

    def __init__(self, model: SpeechModel, run: Callable[..., Any]) -> None:
        self._model = model
        self._run = run
        self._entries: dict[str, tuple[tuple[FileKey, str], Any]] = {}

    async def get(self, voice: ReferenceVoice, transcript: str) -> Any:
        try:
            key = (file_key(voice.audio_path), transcript)
        except OSError as err:
            raise InvalidRequestError(f"voice '{voice.id}': no recording ({err})") from err
        cached = self._entries.get(voice.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        started = time.monotonic()
        prompt = await self._run(self._compute, voice.audio_path, transcript)
        self._entries[voice.id] = (key, prompt)
        _LOGGER.info(
            "Prompt features of voice %s computed in %.2f s", voice.id, time.monotonic() - started
        )
        return prompt

    def _compute(self, path: Path, transcript: str) -> Any:
        import soundfile

        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return self._model.prompt(audio.mean(axis=1), rate, transcript)


class Worker:
    """The voices, the model and the one thread every model call runs in."""

    def __init__(self, model: SpeechModel, library: VoiceLibrary, samples_per_chunk: int) -> None:
        self.model = model
        self.library = library
        self.samples_per_chunk = samples_per_chunk
        # One thread: GLM-TTS state (CUDA streams, grad mode) stays in one place.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glm-tts")
        self.prompts = PromptCache(model, self.run)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the model's thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(function, *args)
        )

    def info(self) -> Info:
        voices = [
            TtsVoice(
                name=voice.id,
                description=voice.description
                + ("" if voice.transcript else " (needs the transcript of its recording)"),
                attribution=_ATTRIBUTION,
                installed=bool(voice.transcript),
                version=None,
                languages=voice.languages or list(_LANGUAGES),
            )
            for voice in self.library.for_engine(ENGINE)
        ]
        program = TtsProgram(
            name="glm-tts",
            description="GLM-TTS zero-shot voice cloning (wyoming-polytts worker)",
            attribution=_ATTRIBUTION,
            installed=True,
            version=__version__,
            voices=voices,
            supports_synthesize_streaming=False,
        )
        return Info(tts=[program])

    def voice(self, name: str | None) -> tuple[ReferenceVoice, str]:
        """The library voice called ``name`` and its transcript."""
        if not name:
            raise InvalidRequestError("name a voice: GLM-TTS speaks only with cloned voices")
        voice = self.library.find(ENGINE, name)
        if voice is None:
            raise VoiceNotFoundError(f"no voice '{name}' in the voice library for {ENGINE}")
        if not voice.transcript:
            raise InvalidRequestError(
                f"voice '{name}' has no transcript; GLM-TTS needs what its recording says"
            )
        return voice, voice.transcript


class GlmTtsHandler(AsyncEventHandler):
    """Answers describe and synthesize; every other event is ignored."""

    def __init__(self, worker: Worker, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._worker = worker

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self._worker.info().event())
        elif Synthesize.is_type(event.type):
            try:
                await self._speak(Synthesize.from_event(event))
            except PolyttsError as err:
                await self.write_event(Error(text=str(err), code=err.code).event())
            except Exception as err:  # a model failure answers this request only
                _LOGGER.exception("GLM-TTS failed")
                failed = Error(text=f"GLM-TTS failed: {err}", code="synthesis-failed")
                await self.write_event(failed.event())
        return True

    async def _speak(self, request: Synthesize) -> None:
        """audio-start, a chunk per slice of each piece, audio-stop."""
        worker = self._worker
        voice, transcript = worker.voice(request.voice.name if request.voice else None)
        text = " ".join(request.text.split())
        if not text:
            raise InvalidTextError("no text to speak")
        prompt = await worker.prompts.get(voice, transcript)
        rate = worker.model.sample_rate
        pieces = worker.model.synthesize(text, prompt)
        await self.write_event(AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS).event())
        step = worker.samples_per_chunk
        while (piece := await worker.run(next, pieces, None)) is not None:
            pcm = to_int16(piece)
            for start in range(0, len(pcm), step):
                audio = pcm[start : start + step].astype("<i2", copy=False).tobytes()
                chunk = AudioChunk(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS, audio=audio)
                await self.write_event(chunk.event())
        await self.write_event(AudioStop().event())


class _PrintsToStderr(io.TextIOBase):
    """``sys.stdout`` while serving: text goes to stderr, the pipe (``fileno``) to Wyoming."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def claim_stdout() -> None:
    """Keep stdout's pipe for Wyoming events only; prints (Python's and C's) go to stderr."""
    sys.stdout.flush()
    protocol = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = cast(TextIO, _PrintsToStderr(protocol))


def load_factory(spec: str) -> ModelFactory:
    """The model factory named ``module:attribute``."""
    module, _, attribute = spec.partition(":")
    factory: ModelFactory = getattr(importlib.import_module(module), attribute)
    return factory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_polytts.workers.glm_tts",
        description="GLM-TTS as a Wyoming TTS server on stdin/stdout (run by wyoming-polytts).",
    )
    parser.add_argument("--checkout", type=Path, required=True, help="GLM-TTS git checkout")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (CHECKOUT/ckpt)")
    parser.add_argument("--voices-dir", type=Path, default=Path("voices"), help="voice library")
    parser.add_argument("--sample-rate", type=int, choices=(24000, 32000), default=24000)
    parser.add_argument("--phoneme", action="store_true", help="phoneme input for Chinese")
    parser.add_argument("--top-k", type=int, default=25, help="sampling candidates (25)")
    parser.add_argument("--sample-method", choices=("ras", "topk"), default="ras")
    parser.add_argument("--seed", type=int, default=0, help="random seed per piece (0)")
    parser.add_argument("--samples-per-chunk", type=int, default=1024)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model factory, module:attribute")
    parser.add_argument("--debug", action="store_true", help="log DEBUG messages")
    return parser


async def serve(worker: Worker) -> None:
    """Answer events on stdin/stdout until stdin closes (or SIGTERM)."""
    server = AsyncServer.from_uri("stdio://")
    await server.run(partial(GlmTtsHandler, worker))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    claim_stdout()
    checkout = args.checkout.expanduser().resolve()
    settings = ModelSettings(
        checkout=checkout,
        checkpoint=(args.checkpoint or checkout / "ckpt").expanduser().resolve(),
        sample_rate=args.sample_rate,
        use_phoneme=args.phoneme,
        top_k=args.top_k,
        sample_method=args.sample_method,
        seed=args.seed,
    )
    library = VoiceLibrary(args.voices_dir.expanduser().resolve(), _READ_ONLY)
    started = time.monotonic()
    try:
        model = load_factory(args.model)(settings)
    except ModelLoadError as err:
        _LOGGER.error("Cannot load GLM-TTS: %s", err)
        return 1
    _LOGGER.info("Model loaded in %.1f s; serving Wyoming on stdio", time.monotonic() - started)
    asyncio.run(serve(Worker(model, library, args.samples_per_chunk)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

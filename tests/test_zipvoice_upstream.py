"""ZipVoice against what upstream really does (issue 25), on the tiny sherpa-onnx models.

The vocoder comes from a release asset checked by sha256 (served here by a
local HTTP server), prompts lose their long silences as ZipVoice's inference
trims them, numbers inside Chinese are read in Chinese (cn2an), an int8 setting
falls back to the float32 files a folder holds, and a sherpa-onnx without
``GenerationConfig.tokens`` is refused at load.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile

from wyoming_polytts.common.audio import shorten_silences
from wyoming_polytts.common.reference_voice import ReferenceVoice
from wyoming_polytts.engines.base import SynthesisRequest
from wyoming_polytts.engines.zipvoice.engine import ZipVoiceEngine
from wyoming_polytts.engines.zipvoice.options import ZipVoiceOptions
from wyoming_polytts.engines.zipvoice.prompt import PromptCache
from wyoming_polytts.engines.zipvoice.tokens import Tokenizer
from wyoming_polytts.engines.zipvoice.vocoder import VOCODER_NAME, download_vocoder
from wyoming_polytts.errors import EngineUnavailableError
from wyoming_polytts.gpu_check.recording import TRANSCRIPT  # what reference_wav says
from wyoming_polytts.library.library import VoiceLibrary, VoiceMeta

from .test_voice_library import LIMITS
from .test_zipvoice import _context

RATE = 24000


@pytest.fixture(scope="module")
def release(tiny_zipvoice: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local stand-in for sherpa-onnx's release: serves the tiny vocoder; its base URL."""
    folder = tmp_path_factory.mktemp("release")
    shutil.copy(tiny_zipvoice / VOCODER_NAME, folder / VOCODER_NAME)
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vocoder_download_is_checked_and_reported(
    tiny_zipvoice: Path,
    release: str,
    tmp_path: Path,
    reference_wav: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """allow_download with the model in the cache: only the vocoder is fetched."""
    cached = tmp_path / "cache" / "zipvoice" / "zipvoice_distill"
    cached.mkdir(parents=True)
    for name in ("text_encoder.onnx", "fm_decoder.onnx", "tokens.txt"):  # float32 only
        shutil.copy(tiny_zipvoice / name, cached / name)
    library = VoiceLibrary(tmp_path / "voices", LIMITS)
    library.add("joe", reference_wav.read_bytes(), VoiceMeta(transcript=TRANSCRIPT))
    options = ZipVoiceOptions(
        allow_download=True,
        vocoder_url=f"{release}/{VOCODER_NAME}",
        vocoder_sha256=_sha256(tiny_zipvoice / VOCODER_NAME),
    )
    engine = ZipVoiceEngine(options, _context(library, tmp_path))
    caplog.set_level(logging.INFO)
    engine.load()
    assert _sha256(tmp_path / "cache" / "zipvoice" / VOCODER_NAME) == options.vocoder_sha256
    assert engine.load_progress is not None and engine.load_progress.fraction == 1.0
    assert f"downloading {VOCODER_NAME} from {release}" in caplog.text
    assert (
        "int8 is true, but" in caplog.text and "using the float32 text_encoder.onnx" in caplog.text
    )
    audio = np.concatenate(list(engine.synthesize(SynthesisRequest(text="Hello.", voice="joe"))))
    assert np.abs(audio).max() > 0


def test_vocoder_with_the_wrong_sha256_is_refused_and_deleted(release: str, tmp_path: Path) -> None:
    target = tmp_path / VOCODER_NAME
    steps: list[float | None] = []
    with pytest.raises(EngineUnavailableError, match="is not the expected 0000"):
        download_vocoder(
            f"{release}/{VOCODER_NAME}", "0" * 64, target, lambda _, f: steps.append(f)
        )
    assert steps and steps[-1] == 1.0
    assert list(tmp_path.iterdir()) == [], "nothing may be left behind"


def test_vocoder_download_that_fails_names_the_fix(release: str, tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailableError, match=r"HTTPError.*set engines.zipvoice.vocoder"):
        download_vocoder(f"{release}/missing.onnx", None, tmp_path / VOCODER_NAME, lambda *_: None)
    assert list(tmp_path.iterdir()) == []


def test_vocoder_without_a_checksum_is_accepted_with_a_warning(
    release: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = download_vocoder(f"{release}/{VOCODER_NAME}", None, tmp_path / "v.onnx", lambda *_: None)
    assert path.is_file()
    assert "without a checksum" in caplog.text


def test_prompt_loses_long_silences(
    tiny_zipvoice: Path, reference_wav: Path, tmp_path: Path
) -> None:
    """1 s of silence before, 3 s inside, 2 s after: 0.1 s, 1 s and 0.1 s are kept."""
    speech, rate = soundfile.read(reference_wav, dtype="float32")
    silence = np.zeros(rate, dtype=np.float32)
    padded = np.concatenate([silence, speech, 3 * [silence], speech, silence, silence], axis=None)
    path = tmp_path / "reference.wav"
    soundfile.write(path, padded, rate)
    voice = ReferenceVoice("v", path, TRANSCRIPT, [], "", tmp_path)
    prompt = PromptCache(Tokenizer(tiny_zipvoice / "tokens.txt"), RATE, 60.0).get(voice)
    trimmed = shorten_silences(speech, rate, 0.1, 1.0)  # the recording's own edges (0.5 s)
    expected = 2 * len(trimmed) / rate + 1.0 - 0.2 + 0.2  # 2 x speech, a 1 s pause, 0.2 s tail
    assert len(prompt.samples) / RATE == pytest.approx(expected, abs=0.05)


def test_shorten_silences() -> None:
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(RATE) / RATE).astype(np.float32)
    gap = np.zeros(2 * RATE, dtype=np.float32)
    audio = np.concatenate([gap, tone, gap, tone, gap])
    edges_only = shorten_silences(audio, RATE, 0.1, None)
    assert len(edges_only) / RATE == pytest.approx(4.2, abs=0.02)
    both = shorten_silences(audio, RATE, 0.1, 0.5)
    assert len(both) / RATE == pytest.approx(2.7, abs=0.02)
    assert shorten_silences(gap, RATE, 0.1, 0.5) is gap, "all silence is left alone"


def test_numbers_inside_chinese_are_read_in_chinese(tiny_zipvoice: Path) -> None:
    tokenizer = Tokenizer(tiny_zipvoice / "tokens.txt")
    assert tokenizer("我有3个苹果。") == tokenizer("我有三个苹果。")
    assert tokenizer("2024年5月1日") == tokenizer("二零二四年五月一日")
    assert tokenizer("I have 3 apples.") == tokenizer("I have three apples.")


def test_sherpa_onnx_without_generation_tokens_is_refused_at_load(
    tiny_zipvoice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sherpa-onnx before 2.0 has a GenerationConfig without ``tokens``."""
    import sherpa_onnx

    class GenerationConfig:  # the older API's fields
        def __init__(self) -> None:
            self.sid, self.speed, self.num_steps, self.silence_scale = 0, 1.0, 5, 0.2

    monkeypatch.setattr(sherpa_onnx, "GenerationConfig", GenerationConfig)
    options = ZipVoiceOptions(model_dir=str(tiny_zipvoice), int8=False)
    with pytest.raises(
        EngineUnavailableError, match=r"GenerationConfig.tokens.*sherpa-onnx>=2\.0\.1"
    ):
        ZipVoiceEngine(
            options, _context(VoiceLibrary(tmp_path / "voices", LIMITS), tmp_path)
        ).load()

"""XTTS against what coqui-tts 0.28 and the released XTTS-v2 files really do (issue 25).

Each case rebuilds here, on the tiny model, the way a real file or library
behaves: a model.pth pickled the original way, a speakers file in torch's old
format, a DeepSpeed whose kernels fail to build, float16 sampling that fails,
a reference recording beyond full scale.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import stat
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.xtts.checkpoint import is_legacy
from wyoming_polytts.engines.xtts.conditioning import compute_conditioning
from wyoming_polytts.engines.xtts.engine import XttsEngine
from wyoming_polytts.engines.xtts.model import build_model
from wyoming_polytts.engines.xtts.options import XttsOptions
from wyoming_polytts.engines.xtts.weights import read_speaker_names
from wyoming_polytts.errors import SynthesisError

from .xtts_fixture import SPEAKERS, TINY_SETTINGS, reference_audio

CHECKPOINT_FILES = ("config.json", "vocab.json", "speakers_xtts.pth")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _engine(folder: Path, tmp: Path, **options: object) -> XttsEngine:
    context = EngineContext(cache_dir=tmp / "cache", voices_dir=tmp, threads=2, base_dir=tmp)
    settings = {"checkpoint_dir": str(folder), "device": "cpu", **TINY_SETTINGS, **options}
    return XttsEngine(XttsOptions(**settings), context)  # type: ignore[arg-type]


def _speaks(engine: XttsEngine, **request: object) -> np.ndarray:
    pieces = list(engine.synthesize(SynthesisRequest(text="Hello.", voice=SPEAKERS[0], **request)))  # type: ignore[arg-type]
    audio = np.concatenate(pieces)
    assert audio.dtype == np.int16 and np.abs(audio).max() > 0
    return audio


@pytest.fixture(scope="module")
def legacy_xtts(tiny_xtts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tiny checkpoint saved as coqui/XTTS-v2's model.pth is: its dict holds the
    XttsConfig object, whose parts are pickled under the old TTS.tts.models.xtts path."""
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import _legacy_safe_globals

    folder = tmp_path_factory.mktemp("legacy-xtts")
    for name in CHECKPOINT_FILES:
        shutil.copy(tiny_xtts / name, folder / name)
    config = XttsConfig()
    config.load_json(str(tiny_xtts / "config.json"))
    state = torch.load(tiny_xtts / "model.pth", map_location="cpu", weights_only=True)
    with _legacy_safe_globals():  # pickles XttsArgs/XttsAudioConfig under the old module path
        torch.save({"model": state["model"], "config": config}, folder / "model.pth")
    yield folder
    folder.chmod(0o755)


def test_the_released_format_is_what_coqui_rewrites(legacy_xtts: Path, tmp_path: Path) -> None:
    """The premise: coqui-tts itself rewrites such a model.pth in place when it loads it."""
    assert is_legacy(legacy_xtts / "model.pth")
    assert b"TTS.tts.models.xtts" in (legacy_xtts / "model.pth").read_bytes()[:200_000]
    copy = tmp_path / "copy"
    shutil.copytree(legacy_xtts, copy)
    before = _digest(copy / "model.pth")
    build_model(copy, copy / "model.pth", deepspeed=False)  # coqui's own path, no conversion
    assert _digest(copy / "model.pth") != before, "coqui-tts no longer rewrites model.pth"


def test_read_only_weights_folder_is_never_written(legacy_xtts: Path, tmp_path: Path) -> None:
    digest, mtime = (
        _digest(legacy_xtts / "model.pth"),
        (legacy_xtts / "model.pth").stat().st_mtime_ns,
    )
    readonly = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP
    legacy_xtts.chmod(readonly)  # a :ro volume (root ignores it: the digest is the proof)
    engine = _engine(legacy_xtts, tmp_path)
    engine.load()
    _speaks(engine)
    converted = tmp_path / "cache" / "xtts-v2-converted" / "model.pth"
    assert converted.is_file() and not is_legacy(converted)
    assert _digest(legacy_xtts / "model.pth") == digest
    assert (legacy_xtts / "model.pth").stat().st_mtime_ns == mtime
    written = converted.stat().st_mtime_ns
    engine.unload()
    engine.load()  # the conversion is reused, not redone
    assert converted.stat().st_mtime_ns == written
    engine.unload()


def test_speakers_in_torchs_old_format_are_listed(tiny_xtts: Path, tmp_path: Path) -> None:
    speakers = torch.load(tiny_xtts / "speakers_xtts.pth", weights_only=True)
    old = tmp_path / "speakers_xtts.pth"
    torch.save(speakers, old, _use_new_zipfile_serialization=False)
    assert read_speaker_names(old) == list(SPEAKERS)


def test_deepspeed_that_fails_falls_back(
    tiny_xtts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """A deepspeed whose init_inference fails as a kernel build without nvcc does."""
    package = tmp_path / "fake" / "deepspeed"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "def init_inference(**kwargs):\n"
        "    raise RuntimeError('Error building extension transformer_inference: nvcc missing')\n"
    )
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "deepspeed", raising=False)
    model, used = build_model(tiny_xtts, tiny_xtts / "model.pth", deepspeed=True)
    assert not used
    assert "DeepSpeed failed (RuntimeError: Error building extension" in caplog.text
    # DeepSpeed's attempt halved the GPT in place: the fallback is a fresh model.
    assert next(model.gpt.gpt_inference.parameters()).dtype == torch.float32


def test_deepspeed_is_off_unless_asked() -> None:
    assert XttsOptions().deepspeed is False


@pytest.fixture
def engine(tiny_xtts: Path, tmp_path: Path) -> Iterator[XttsEngine]:
    xtts = _engine(tiny_xtts, tmp_path)
    xtts.load()
    yield xtts
    xtts.unload()


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")
def test_sampling_that_fails_in_float16_and_float32_is_the_requests_fault(
    engine: XttsEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A temperature so small that the logits overflow: the NaN/inf assert of #4375."""
    caplog.set_level(logging.WARNING)
    assert engine._loaded is not None
    engine._loaded = replace(engine._loaded, half=True)  # as on CUDA with half: true
    with pytest.raises(SynthesisError, match="check the request's temperature"):
        _speaks(engine, options={"temperature": 1e-45})
    assert "float16 sampling failed" in caplog.text
    assert engine._loaded.half, "float32 failed too: float16 was not to blame"
    _speaks(engine)


def test_sampling_that_fails_in_float32_is_a_clear_error(engine: XttsEngine) -> None:
    with pytest.raises(SynthesisError, match="XTTS sampling failed"):
        _speaks(engine, options={"temperature": 1e-45})


def test_reference_beyond_full_scale_is_clipped(engine: XttsEngine, tmp_path: Path) -> None:
    quiet = reference_audio(tmp_path / "quiet.wav", pitch=150.0)
    samples, rate = soundfile.read(quiet, dtype="float32")
    loud = tmp_path / "loud.wav"
    soundfile.write(loud, samples * 40.0, rate, subtype="FLOAT")  # peaks far above 1.0
    clipped = tmp_path / "clipped.wav"
    soundfile.write(clipped, np.clip(samples * 40.0, -1, 1), rate, subtype="FLOAT")
    assert engine._loaded is not None
    model = engine._loaded.model
    got, want = compute_conditioning(model, loud), compute_conditioning(model, clipped)
    assert torch.allclose(got.speaker_embedding, want.speaker_embedding)
    assert torch.allclose(got.gpt_cond_latent, want.gpt_cond_latent)

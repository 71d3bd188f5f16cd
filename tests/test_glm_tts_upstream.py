"""The worker's two calls into GLM-TTS, against stand-ins with upstream's real signatures.

GLM-TTS needs a CUDA GPU and its checkpoint, so these stand-ins are written
into a fake checkout with the signatures and the file access of the pinned
commit: ``Token2Wav(flow, sample_rate=24000, device="cuda")`` reading its
vocoder from ``ckpt/hift/hift.pt`` relative to the working folder, and a
``TTSFrontEnd._extract_spk_embedding(speech)`` as at the pinned commit and as
later commits have it (with their ``torch.npu`` check).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch

from wyoming_polytts.workers.glm_tts_upstream import (
    GLM_TTS_REF,
    build_token2wav,
    speaker_embedding_problem,
)

REPO = Path(__file__).resolve().parent.parent

TTS_MODEL_UTIL = """
class Token2Wav:
    def __init__(self, flow, sample_rate: int = 24000, device: str = "cuda"):
        self.flow = flow
        self.device = device
        path = "ckpt/hift/hift.pt" if sample_rate == 24000 else "ckpt/vocos2d/generator_jit.ckpt"
        with open(path, "rb") as file:  # as load_hift/load_vocos_jit do, relative to the cwd
            self.vocoder = file.read()
"""

FRONTEND = """
import torch

class TTSFrontEnd:
    def __init__(self, npu_check: bool):
        self.npu_check = npu_check

    def _extract_spk_embedding(self, speech):
        if self.npu_check and torch.npu.is_available():  # later commits on main
            pass
        return torch.zeros(1, 192)
"""


def _module(path: Path, source: str) -> ModuleType:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    folder = tmp_path / "GLM-TTS"
    (folder / "ckpt" / "hift").mkdir(parents=True)
    (folder / "ckpt" / "hift" / "hift.pt").write_bytes(b"vocoder in the checkout")
    return folder


def test_token2wav_reads_a_checkpoint_outside_the_checkout(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    util = _module(checkout / "utils" / "tts_model_util.py", TTS_MODEL_UTIL)
    checkpoint = tmp_path / "models" / "glm-tts"  # the Docker setup of docs/engines/glm-tts.md
    (checkpoint / "hift").mkdir(parents=True)
    (checkpoint / "hift" / "hift.pt").write_bytes(b"vocoder in the models volume")
    monkeypatch.chdir(checkout)  # the worker's working folder
    with pytest.raises(TypeError, match="ckpt_path"):  # what the worker used to pass
        util.Token2Wav("flow", sample_rate=24000, device="cpu", ckpt_path=str(checkpoint))

    token2wav = build_token2wav(util.Token2Wav, "flow", 24000, "cpu", checkout, checkpoint)
    assert token2wav.vocoder == b"vocoder in the models volume"
    assert Path.cwd() == checkout, "the working folder is restored"

    inside = build_token2wav(util.Token2Wav, "flow", 24000, "cpu", checkout, checkout / "ckpt")
    assert inside.vocoder == b"vocoder in the checkout"


def test_a_missing_vocoder_still_fails_loudly(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    util = _module(checkout / "utils" / "tts_model_util.py", TTS_MODEL_UTIL)
    monkeypatch.chdir(checkout)
    with pytest.raises(FileNotFoundError, match="vocos2d"):
        build_token2wav(util.Token2Wav, "flow", 32000, "cpu", checkout, tmp_path / "empty")
    assert Path.cwd() == checkout


def test_speaker_embedding_of_a_newer_checkout_fails_at_load(checkout: Path) -> None:
    frontend = _module(checkout / "cosyvoice" / "cli" / "frontend.py", FRONTEND)
    assert not hasattr(torch, "npu"), "this torch has an NPU module: the case cannot be shown"
    problem = speaker_embedding_problem(frontend.TTSFrontEnd(npu_check=True), torch)
    assert problem is not None
    assert "npu" in problem and f"checkout {GLM_TTS_REF}" in problem
    assert speaker_embedding_problem(frontend.TTSFrontEnd(npu_check=False), torch) is None


def test_the_pinned_commit_is_what_the_image_and_the_docs_install() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG GLM_TTS_REF={GLM_TTS_REF}" in dockerfile
    docs = (REPO / "docs" / "engines" / "glm-tts.md").read_text(encoding="utf-8")
    assert f"checkout {GLM_TTS_REF}" in docs
    requirements = REPO / "docker" / "glm-tts-requirements.txt"
    assert requirements.name in dockerfile and requirements.name in docs
    pins = [
        line.split("#")[0].strip()
        for line in requirements.read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", pin) for pin in pins)
    assert "requirements-mini.txt" not in dockerfile + docs

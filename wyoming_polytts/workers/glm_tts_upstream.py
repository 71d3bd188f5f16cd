"""Where the worker meets GLM-TTS's own API, as of the pinned commit.

GLM_TTS_REF is the zai-org/GLM-TTS commit this project was checked against
(the Dockerfile and docs/engines/glm-tts.md install it). Two of its calls need care:

- ``utils.tts_model_util.Token2Wav(flow, sample_rate, device)`` loads its vocoder
  from ``ckpt/hift/hift.pt`` (or ``ckpt/vocos2d/...``) relative to the working
  folder; it takes no checkpoint path. A checkpoint elsewhere (the Docker setup's
  models volume) is reached through a short-lived folder whose ``ckpt`` links to it.
- Later commits on GLM-TTS's main call ``torch.npu.is_available()`` in
  ``TTSFrontEnd._extract_spk_embedding``, an AttributeError on ordinary CUDA torch
  that would fail every voice's prompt. The worker runs that call once at load,
  so such a checkout fails there, with the fix, instead of at every request.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GLM_TTS_REF = "c5dc7aecc3b4032032d631b271e767893984f821"
"""The zai-org/GLM-TTS commit (2025-12-17) whose API this worker follows."""

_CHECKPOINT_LINK = "ckpt"


def build_token2wav(
    token2wav: Callable[..., Any],
    flow: Any,
    sample_rate: int,
    device: Any,
    checkout: Path,
    checkpoint: Path,
) -> Any:
    """``Token2Wav(flow, sample_rate=..., device=...)`` with its vocoder read from
    ``checkpoint``, which need not be ``<checkout>/ckpt``."""
    if checkpoint.resolve() == (checkout / _CHECKPOINT_LINK).resolve():
        return token2wav(flow, sample_rate=sample_rate, device=device)
    with _working_folder_with_checkpoint(checkpoint):
        return token2wav(flow, sample_rate=sample_rate, device=device)


@contextlib.contextmanager
def _working_folder_with_checkpoint(checkpoint: Path) -> Iterator[None]:
    """A temporary working folder whose ``ckpt`` is ``checkpoint``; the old one after."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="glm-tts-") as folder:
        (Path(folder) / _CHECKPOINT_LINK).symlink_to(checkpoint.resolve(), target_is_directory=True)
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)


def speaker_embedding_problem(frontend: Any, torch: Any) -> str | None:
    """Why ``frontend._extract_spk_embedding`` fails on a second of quiet noise, or None.

    Names the pinned commit when the checkout's version fails (the NPU check of later
    commits on CUDA torch).
    """
    generator = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.randn(1, 16000, generator=generator)
    try:
        frontend._extract_spk_embedding(noise)
    except AttributeError as err:
        return (
            f"this GLM-TTS checkout cannot compute a speaker embedding ({err}); newer commits "
            f"need torch_npu there. Check out the commit this worker follows: "
            f"git -C <checkout> checkout {GLM_TTS_REF}"
        )
    return None

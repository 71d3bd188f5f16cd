"""ZipVoice on sherpa-onnx: model instances, CPU or CUDA, one sentence per call.

Each instance is a complete ``sherpa_onnx.OfflineTts`` (text encoder, flow-matching
decoder, Vocos vocoder); a call borrows a free one, so ``concurrency`` instances
let that many sentences run side by side (sherpa-onnx releases the GIL while it
generates). Tokens are made by :mod:`.zipvoice_tokens` and handed over as
strings, which sherpa-onnx maps through the model's ``tokens.txt``.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import EngineUnavailableError, SynthesisError
from .options import Sampling
from .prompt import Prompt

if TYPE_CHECKING:
    from sherpa_onnx import OfflineTts

_LOGGER = logging.getLogger(__name__)

_ONE_CHUNK = "1000000"
"""``min_words_in_sentence`` large enough that sherpa-onnx keeps a sentence in one piece
(the pool already hands over one sentence at a time)."""


def cuda_available() -> bool:
    """Whether the installed sherpa-onnx build carries ONNX Runtime's CUDA provider."""
    import sherpa_onnx

    libs = Path(sherpa_onnx.__file__).parent / "lib"
    return any(libs.glob("*onnxruntime_providers_cuda*"))


def export_speed(prompt_tokens: int, tokens: int, speed: float) -> float:
    """The speed input that makes the ONNX export speak the new tokens at ``speed``.

    The export sizes its output as ``ceil(L / P * (P + T) / speed)`` frames (``L``
    prompt frames, ``P`` prompt and ``T`` new tokens) and the prompt's ``L`` frames are
    cut off, so its speed also squeezes the prompt's share: the new speech comes out
    faster than asked, and a short sentence at a high speed gets no frames at all
    (sherpa-onnx then refuses it). This input gives exactly ``L / P * T / speed`` new
    frames, as the PyTorch model does.
    """
    return (prompt_tokens + tokens) / (prompt_tokens + tokens / speed)


class SherpaRuntime:
    """``instances`` sherpa-onnx ZipVoice models loaded from ``files``."""

    def __init__(self, files: dict[str, Path], instances: int, threads: int, provider: str) -> None:
        import sherpa_onnx

        generation_config = getattr(sherpa_onnx, "GenerationConfig", None)
        if generation_config is None or not hasattr(generation_config(), "tokens"):
            raise EngineUnavailableError(
                f"sherpa-onnx {getattr(sherpa_onnx, '__version__', '(unknown version)')} cannot "
                "take ZipVoice tokens (GenerationConfig.tokens); install sherpa-onnx>=2.0.1 "
                "(for CUDA, its CUDA build of that version or later)"
            )
        if provider == "cuda" and not cuda_available():
            raise EngineUnavailableError(
                "engines.zipvoice.provider is cuda, but this sherpa-onnx build has no CUDA "
                "support; install a CUDA build of sherpa-onnx (see its documentation) or use "
                "provider: cpu"
            )
        config = sherpa_onnx.OfflineTtsConfig(
            model=sherpa_onnx.OfflineTtsModelConfig(
                zipvoice=sherpa_onnx.OfflineTtsZipvoiceModelConfig(
                    tokens=str(files["tokens"]),
                    encoder=str(files["encoder"]),
                    decoder=str(files["decoder"]),
                    vocoder=str(files["vocoder"]),
                ),
                num_threads=threads,
                provider=provider,
            )
        )
        if not config.validate():
            raise EngineUnavailableError(f"sherpa-onnx refuses the ZipVoice files {files}")
        self._free: queue.SimpleQueue[OfflineTts] = queue.SimpleQueue()
        try:
            for _ in range(instances):
                self._free.put(sherpa_onnx.OfflineTts(config))
        except RuntimeError as err:  # ONNX Runtime's load errors
            raise EngineUnavailableError(f"cannot load the ZipVoice model: {err}") from err
        tts = self._free.get()
        self.sample_rate: int = tts.sample_rate
        self._free.put(tts)
        _LOGGER.info(
            "ZipVoice %s on sherpa-onnx %s: %s instance(s), %s thread(s) each",
            files["decoder"].name,
            provider,
            instances,
            threads,
        )

    @contextmanager
    def _instance(self) -> Iterator[OfflineTts]:
        tts = self._free.get()
        try:
            yield tts
        finally:
            self._free.put(tts)

    def generate(self, prompt: Prompt, tokens: list[str], sampling: Sampling) -> np.ndarray:
        """Float audio in [-1, 1] for ``tokens`` in the prompt's voice."""
        import sherpa_onnx

        config = sherpa_onnx.GenerationConfig()
        config.reference_audio = prompt.samples
        config.reference_sample_rate = prompt.rate
        config.reference_text = prompt.transcript
        config.tokens = [prompt.tokens, tokens]
        config.num_steps = sampling.num_steps
        config.speed = export_speed(len(prompt.tokens), len(tokens), sampling.speed)
        config.silence_scale = 1.0  # keep the pauses the model made
        config.extra = {
            "guidance_scale": repr(sampling.guidance_scale),
            "t_shift": repr(sampling.t_shift),
            "min_words_in_sentence": _ONE_CHUNK,
        }
        with self._instance() as tts:
            audio = tts.generate("", config)
        samples = np.asarray(audio.samples, dtype=np.float32)
        if not samples.size:
            raise SynthesisError("sherpa-onnx produced no audio (see the server log for why)")
        return samples

"""``runtime: torch``: ZipVoice on its official PyTorch code, for a GPU machine.

The official code is not on PyPI (the PyPI name ``zipvoice`` is an empty
placeholder) and cannot be pip-installed from its repository either (it has no
build metadata): a checkout of github.com/k2-fsa/ZipVoice goes on ``PYTHONPATH``,
its requirements installed beside this server (docs/engines/zipvoice.md; the GPU image
does not do it). This adapter stays thin: it builds the package's own model
class from ``model.json``, loads ``model.pt`` with the package's loader,
computes a prompt's features once with the package's ``VocosFbank`` and calls
the model's ``sample``; the vocoder is Vocos (``charactr/vocos-mel-24khz``).
Tokens come from the same tokenizer as the sherpa-onnx runtime. Only the check
that the package is importable runs in CI; everything else needs the package,
its weights and (for speed) a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import EngineUnavailableError
from .options import Sampling, ZipVoiceOptions
from .prompt import Prompt

VOCOS_REPO = "charactr/vocos-mel-24khz"
_FEAT_SCALE = 0.1
_TARGET_RMS = 0.1
"""ZipVoice's feature scale and prompt loudness (its inference defaults)."""


def require_official_package() -> None:
    """Raise :class:`EngineUnavailableError` unless the official package and Vocos import."""
    try:
        found = importlib.util.find_spec("zipvoice.models.zipvoice") is not None
    except ModuleNotFoundError:  # no zipvoice at all, or PyPI's empty placeholder
        found = False
    if not found or importlib.util.find_spec("vocos") is None:
        raise EngineUnavailableError(
            "engines.zipvoice.runtime is torch, but the official ZipVoice code (and vocos) "
            "is not importable: clone https://github.com/k2-fsa/ZipVoice, install its "
            "requirements.txt and put the checkout on PYTHONPATH (it cannot be pip-installed, "
            "and the PyPI package named zipvoice is an empty placeholder), or use runtime: "
            "sherpa-onnx"
        )


class TorchRuntime:
    """One official ZipVoice model and a Vocos vocoder on ``cuda`` or ``cpu``."""

    sample_rate = 24000

    def __init__(
        self,
        files: dict[str, Path],
        table: dict[str, int],
        options: ZipVoiceOptions,
        threads: int,
        vocoder_dir: Path | None,
    ) -> None:
        import torch
        from zipvoice.models.zipvoice import ZipVoice
        from zipvoice.models.zipvoice_distill import ZipVoiceDistill
        from zipvoice.utils.checkpoint import load_checkpoint
        from zipvoice.utils.feature import VocosFbank

        if options.provider == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailableError("engines.zipvoice.provider is cuda, but torch sees no GPU")
        self._device = torch.device(options.provider)
        if options.provider == "cpu":
            torch.set_num_threads(threads)
        config = json.loads(files["config"].read_text(encoding="utf-8"))
        model_class = ZipVoiceDistill if options.model == "zipvoice_distill" else ZipVoice
        self._model = model_class(**config["model"], vocab_size=len(table), pad_id=table["_"])
        load_checkpoint(filename=files["checkpoint"], model=self._model, strict=True)
        self._model.to(self._device).eval()
        self._vocoder = _vocos(vocoder_dir, options.allow_download).to(self._device).eval()
        self._fbank = VocosFbank()
        self._table = table
        self._features: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def generate(self, prompt: Prompt, tokens: list[str], sampling: Sampling) -> np.ndarray:
        """Float audio in [-1, 1], as the official ``generate_sentence`` makes it (one chunk)."""
        import torch

        features, loudness = self._prompt_features(prompt)
        with torch.inference_mode():
            predicted, *_ = self._model.sample(
                tokens=[[self._table[t] for t in tokens]],
                prompt_tokens=[[self._table[t] for t in prompt.tokens]],
                prompt_features=features,
                prompt_features_lens=torch.tensor([features.size(1)], device=self._device),
                speed=sampling.speed,
                t_shift=sampling.t_shift,
                duration="predict",
                num_step=sampling.num_steps,
                guidance_scale=sampling.guidance_scale,
            )
            mel = predicted.permute(0, 2, 1) / _FEAT_SCALE
            wav = self._vocoder.decode(mel).squeeze(1).clamp(-1, 1)
        return np.asarray(wav[0].float().cpu().numpy() * loudness, dtype=np.float32)

    def _prompt_features(self, prompt: Prompt) -> tuple[Any, float]:
        """The prompt's scaled features and the output gain, computed once per prompt."""
        import torch

        with self._lock:
            cached = self._features.get(prompt.key)
            if cached is None:
                wav = torch.from_numpy(prompt.samples)[None]
                rms = float(torch.sqrt(torch.mean(torch.square(wav))))
                gain = 1.0
                if 0 < rms < _TARGET_RMS:
                    wav, gain = wav * (_TARGET_RMS / rms), rms / _TARGET_RMS
                features = self._fbank.extract(wav, sampling_rate=prompt.rate)
                cached = ((features.unsqueeze(0) * _FEAT_SCALE).to(self._device), gain)
                self._features[prompt.key] = cached
            return cached


def _vocos(folder: Path | None, allow_download: bool) -> Any:
    """Vocos from a local folder (config.yaml, pytorch_model.bin) or, when allowed, the Hub."""
    import torch
    from vocos import Vocos

    if folder is not None:
        vocoder = Vocos.from_hparams(str(folder / "config.yaml"))
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        vocoder.load_state_dict(state)
        return vocoder
    if not allow_download:
        raise EngineUnavailableError(
            f"ZipVoice (runtime torch) needs the Vocos vocoder: set engines.zipvoice.vocoder to "
            f"a folder holding {VOCOS_REPO}'s config.yaml and pytorch_model.bin, or "
            "allow_download: true"
        )
    return Vocos.from_pretrained(VOCOS_REPO)

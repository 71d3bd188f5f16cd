"""Loading XTTS onto a device, and running it there: precision and GPU memory errors.

Imported only when the engine loads (it imports torch and coqui-tts).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
from TTS.tts.configs.xtts_config import XttsConfig
from TTS.tts.models.xtts import Xtts

from ..errors import EngineUnavailableError, SynthesisError
from .xtts_options import XttsOptions

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory and how it runs."""

    model: Xtts
    device: str
    """``cuda`` or ``cpu``."""

    half: bool
    """Inference runs in float16 autocast."""

    key: str
    """Identifies the weights (size and mtime of model.pth), for caches derived from them."""

    def precision(self) -> AbstractContextManager[object]:
        """float16 autocast when configured, else nothing."""
        if self.half:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


def load_model(folder: Path, options: XttsOptions, threads: int) -> LoadedModel:
    """Load the checkpoint in ``folder`` with coqui-tts's own loader (blocking)."""
    device = _device(options.device, torch.cuda.is_available())
    half = options.half and device == "cuda"
    if options.half and not half:
        _LOGGER.warning("engines.xtts.half applies only on CUDA; running in float32")
    deepspeed = _use_deepspeed(options.deepspeed, device)
    if device == "cpu":
        torch.set_num_threads(threads)
    config = XttsConfig()
    config.load_json(str(folder / "config.json"))
    model = Xtts(config)
    model.load_checkpoint(config, checkpoint_dir=str(folder), eval=True, use_deepspeed=deepspeed)
    _fold_weight_norm(model.hifigan_decoder.waveform_decoder)
    model.to(device)
    stat = (folder / "model.pth").stat()
    _LOGGER.info(
        "Loaded XTTS from %s on %s%s%s",
        folder,
        device,
        " (float16)" if half else "",
        " with DeepSpeed" if deepspeed else "",
    )
    return LoadedModel(model, device, half, f"{stat.st_size}:{stat.st_mtime_ns}")


@contextlib.contextmanager
def out_of_memory_as_error() -> Iterator[None]:
    """Turn a CUDA out-of-memory error into a clear request error, freeing cached memory."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        torch.cuda.empty_cache()
        raise SynthesisError(
            "XTTS ran out of GPU memory; try again shortly, with shorter text, or lower "
            "engines.xtts.concurrency"
        ) from err


def release_memory(device: str) -> None:
    """Hand cached GPU memory back after the model was dropped."""
    if device == "cuda":
        torch.cuda.empty_cache()


def _device(option: str, cuda_available: bool) -> str:
    if option == "auto":
        return "cuda" if cuda_available else "cpu"
    if option == "cuda" and not cuda_available:
        raise EngineUnavailableError(
            "engines.xtts.device is cuda, but torch sees no CUDA GPU (is a CPU build installed?)"
        )
    return option


def _use_deepspeed(option: bool | None, device: str) -> bool:
    installed = importlib.util.find_spec("deepspeed") is not None
    if option and not installed:
        raise EngineUnavailableError(
            "engines.xtts.deepspeed is true, but deepspeed is not installed (pip install deepspeed)"
        )
    if option and device != "cuda":
        _LOGGER.warning("engines.xtts.deepspeed applies only on CUDA; not using it")
    return bool(installed if option is None else option) and device == "cuda"


def _fold_weight_norm(module: torch.nn.Module) -> None:
    """Bake weight norm into the vocoder's weights, as coqui's HiFi-GAN loader does for
    inference (its ``remove_weight_norm`` fails on XTTS's decoder): same output, without
    recomputing every weight on every decode."""
    from torch.nn.utils import parametrize

    for layer in module.modules():
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight")

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

from ...common.file_cache import file_key
from ...errors import EngineUnavailableError, SynthesisError
from .checkpoint import loadable_checkpoint
from .options import XttsOptions

_LOGGER = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model in memory and how it runs."""

    model: Xtts
    device: str
    """``cuda`` or ``cpu``."""

    half: bool
    """Inference runs in float16 autocast (set to False for good when float16 sampling
    fails where float32 does not; see :mod:`.xtts_stream`)."""

    key: str
    """Identifies the weights (size and mtime of model.pth), for caches derived from them."""

    def precision(self) -> AbstractContextManager[object]:
        """float16 autocast when configured, else nothing."""
        if self.half:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


def load_model(folder: Path, options: XttsOptions, threads: int, cache: Path) -> LoadedModel:
    """Load the checkpoint in ``folder`` with coqui-tts's own loader (blocking).

    ``folder`` is only read: an original-format model.pth is converted into ``cache``.
    """
    device = _device(options.device, torch.cuda.is_available())
    half = options.half and device == "cuda"
    if options.half and not half:
        _LOGGER.warning("engines.xtts.half applies only on CUDA; running in float32")
    if half:
        _LOGGER.warning(
            "engines.xtts.half is experimental: XTTS can sample NaN/inf under float16 "
            "(coqui-ai/TTS#4375); a request that fails so is retried in float32, which "
            "then stays on"
        )
    deepspeed = _use_deepspeed(options.deepspeed, device)
    if device == "cpu":
        torch.set_num_threads(threads)
    checkpoint = loadable_checkpoint(folder / "model.pth", cache)
    model, deepspeed = build_model(folder, checkpoint, deepspeed)
    model.to(device)
    key = file_key(folder / "model.pth")
    _LOGGER.info(
        "Loaded XTTS from %s on %s%s%s",
        folder,
        device,
        " (float16)" if half else "",
        " with DeepSpeed" if deepspeed else "",
    )
    return LoadedModel(model, device, half, str(key))


def build_model(folder: Path, checkpoint: Path, deepspeed: bool) -> tuple[Xtts, bool]:
    """The model from ``folder``'s config, vocab and speakers and the weights in
    ``checkpoint``, and whether DeepSpeed runs it: when DeepSpeed fails (its kernels
    are built on first use, which needs a CUDA toolkit), it is loaded again without."""
    config = XttsConfig()
    config.load_json(str(folder / "config.json"))
    try:
        model = _xtts(config, folder, checkpoint, deepspeed)
    except Exception as err:  # a kernel build or import failure inside DeepSpeed
        if not deepspeed:
            raise
        _LOGGER.warning(
            "XTTS: DeepSpeed failed (%s: %s); loading without it (engines.xtts.deepspeed: false "
            "skips this attempt)",
            type(err).__name__,
            err,
        )
        return _xtts(config, folder, checkpoint, False), False
    return model, deepspeed


def _xtts(config: XttsConfig, folder: Path, checkpoint: Path, deepspeed: bool) -> Xtts:
    model = Xtts(config)
    model.load_checkpoint(
        config,
        checkpoint_dir=str(folder),
        checkpoint_path=str(checkpoint),
        eval=True,
        use_deepspeed=deepspeed,
    )
    _fold_weight_norm(model.hifigan_decoder.waveform_decoder)
    return model


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


def _use_deepspeed(option: bool, device: str) -> bool:
    if not option:
        return False
    if importlib.util.find_spec("deepspeed") is None:
        _LOGGER.warning(
            "engines.xtts.deepspeed is true, but deepspeed is not installed; not using it"
        )
        return False
    if device != "cuda":
        _LOGGER.warning("engines.xtts.deepspeed applies only on CUDA; not using it")
        return False
    return True


def _fold_weight_norm(module: torch.nn.Module) -> None:
    """Bake weight norm into the vocoder's weights, as coqui's HiFi-GAN loader does for
    inference (its ``remove_weight_norm`` fails on XTTS's decoder): same output, without
    recomputing every weight on every decode."""
    from torch.nn.utils import parametrize

    for layer in module.modules():
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight")

"""Where ZipVoice's model files come from: a configured folder, or a download into the cache.

The sherpa-onnx runtime needs the text encoder, the flow-matching decoder (the
official ONNX export's ``text_encoder[_int8].onnx`` / ``fm_decoder[_int8].onnx``,
or sherpa-onnx's repackaged ``encoder[.int8].onnx`` / ``decoder[.int8].onnx``),
the model's ``tokens.txt`` and sherpa-onnx's Vocos vocoder ``vocos_24khz.onnx``.
The torch runtime needs ``model.pt``, ``model.json`` and ``tokens.txt``. With
``allow_download`` and no ``model_dir``, missing files are fetched from the
official repository (``k2-fsa/ZipVoice``, folder ``zipvoice/`` or
``zipvoice_distill/``) into ``cache_dir/zipvoice``; a configured folder is used
as it is and never downloaded into.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import EngineUnavailableError
from .base import EngineContext
from .zipvoice_options import ZipVoiceOptions

_LOGGER = logging.getLogger(__name__)

TOKENS = ("tokens.txt",)
VOCODER = ("vocos_24khz.onnx",)
TORCH_ROLES: dict[str, tuple[str, ...]] = {
    "checkpoint": ("model.pt",),
    "config": ("model.json",),
    "tokens": TOKENS,
}
"""The official PyTorch checkpoint's files, by role."""


def onnx_roles(int8: bool) -> dict[str, tuple[str, ...]]:
    """The ONNX files by role, each with the names it goes by (the downloadable one first)."""
    suffix = "_int8" if int8 else ""
    packaged = ".int8" if int8 else ""
    return {
        "encoder": (f"text_encoder{suffix}.onnx", f"encoder{packaged}.onnx"),
        "decoder": (f"fm_decoder{suffix}.onnx", f"decoder{packaged}.onnx"),
        "tokens": TOKENS,
        "vocoder": VOCODER,
    }


def locate(
    options: ZipVoiceOptions, context: EngineContext, roles: dict[str, tuple[str, ...]]
) -> dict[str, Path]:
    """The file of every role, downloading missing ones when allowed.

    Raises :class:`EngineUnavailableError` naming what is missing and how to get it.
    """
    download_root = context.cache_dir / "zipvoice"
    folder = context.path(options.model_dir) if options.model_dir else download_root / options.model
    found: dict[str, Path] = {}
    missing: dict[str, tuple[str, ...]] = {}
    named = False
    for role, names in roles.items():
        explicit = getattr(options, role, None)
        if explicit:
            base = folder if options.model_dir else context.base_dir
            candidates = [(base / Path(explicit).expanduser()).resolve()]
        else:
            candidates = [folder / name for name in names]
            if role == "vocoder":
                candidates.append(download_root / options.vocoder_file)
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing[role] = (str(candidates[0]),) if explicit else names
            named = named or bool(explicit)
        else:
            found[role] = path
    if not missing:
        return found
    wanted = "; ".join(f"{role} ({' or '.join(names)})" for role, names in missing.items())
    if options.model_dir or not options.allow_download or named:
        raise EngineUnavailableError(
            f"ZipVoice model files missing in {folder}: {wanted}. Set engines.zipvoice.model_dir "
            f"to a folder holding them, or allow_download: true (without model_dir) to fetch "
            f"them from {options.repo} (the vocoder from {options.vocoder_repo})"
        )
    for role, names in missing.items():
        found[role] = _download(options, download_root, role, names[0], wanted)
    return found


def _download(options: ZipVoiceOptions, root: Path, role: str, name: str, wanted: str) -> Path:
    from huggingface_hub import hf_hub_download

    if role == "vocoder":
        repo, filename, revision = options.vocoder_repo, options.vocoder_file, None
    else:
        repo, filename, revision = options.repo, f"{options.model}/{name}", options.revision
    _LOGGER.info("Downloading %s from %s", filename, repo)
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_dir=root))
    except Exception as err:  # offline, 404, disk full: all mean "missing"
        raise EngineUnavailableError(
            f"ZipVoice model files missing: {wanted}; the download of {filename} from {repo} "
            f"failed: {type(err).__name__}: {err}"
        ) from err

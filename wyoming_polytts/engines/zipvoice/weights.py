"""Where ZipVoice's model files come from: a configured folder, or a download into the cache.

The sherpa-onnx runtime needs the text encoder, the flow-matching decoder (the
official ONNX export's ``text_encoder[_int8].onnx`` / ``fm_decoder[_int8].onnx``,
or sherpa-onnx's repackaged ``encoder[.int8].onnx`` / ``decoder[.int8].onnx``),
the model's ``tokens.txt`` and sherpa-onnx's Vocos vocoder ``vocos_24khz.onnx``;
with ``int8`` a folder holding only the float32 files uses those, with a warning.
The torch runtime needs ``model.pt``, ``model.json`` and ``tokens.txt``. With
``allow_download`` and no ``model_dir``, missing files are fetched into
``cache_dir/zipvoice``: the model's from the official repository
(``k2-fsa/ZipVoice``, folder ``zipvoice/`` or ``zipvoice_distill/``), the vocoder
from sherpa-onnx's release (:mod:`.zipvoice_vocoder`). A configured folder is
used as it is and never downloaded into.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ...errors import EngineUnavailableError
from ..base import EngineContext
from .options import ZipVoiceOptions
from .vocoder import VOCODER_NAME, Progress, download_vocoder

_LOGGER = logging.getLogger(__name__)

TOKENS = ("tokens.txt",)
VOCODER = (VOCODER_NAME,)
TORCH_ROLES: dict[str, tuple[str, ...]] = {
    "checkpoint": ("model.pt",),
    "config": ("model.json",),
    "tokens": TOKENS,
}
"""The official PyTorch checkpoint's files, by role."""


def onnx_roles(int8: bool) -> dict[str, tuple[str, ...]]:
    """The ONNX files by role, each with the names it goes by (the downloadable one first;
    for int8, the float32 names last, as a fallback)."""
    full: dict[str, tuple[str, ...]] = {
        "encoder": ("text_encoder.onnx", "encoder.onnx"),
        "decoder": ("fm_decoder.onnx", "decoder.onnx"),
    }
    if int8:
        quantized = {
            "encoder": ("text_encoder_int8.onnx", "encoder.int8.onnx"),
            "decoder": ("fm_decoder_int8.onnx", "decoder.int8.onnx"),
        }
        full = {role: (*quantized[role], *names) for role, names in full.items()}
    return {**full, "tokens": TOKENS, "vocoder": VOCODER}


def locate(
    options: ZipVoiceOptions,
    context: EngineContext,
    roles: dict[str, tuple[str, ...]],
    progress: Progress,
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
                candidates.append(download_root / VOCODER_NAME)
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing[role] = (str(candidates[0]),) if explicit else names
            named = named or bool(explicit)
        else:
            found[role] = path
    if not missing:
        _warn_full_precision(options, found)
        return found
    wanted = "; ".join(f"{role} ({' or '.join(names)})" for role, names in missing.items())
    if options.model_dir or not options.allow_download or named:
        raise EngineUnavailableError(
            f"ZipVoice model files missing in {folder}: {wanted}. Set engines.zipvoice.model_dir "
            f"to a folder holding them, or allow_download: true (without model_dir) to fetch "
            f"them from {options.repo} (the vocoder from {options.vocoder_url})"
        )
    for role, names in missing.items():
        if role == "vocoder":
            target = download_root / VOCODER_NAME
            sha256 = options.vocoder_sha256
            found[role] = download_vocoder(options.vocoder_url, sha256, target, progress)
        else:
            found[role] = _download(options, download_root, names[0], wanted)
    _warn_full_precision(options, found)
    return found


def _warn_full_precision(options: ZipVoiceOptions, found: dict[str, Path]) -> None:
    """With int8 asked for, say so when only float32 files were there."""
    if not options.int8 or options.encoder or options.decoder:
        return
    full = [found[r] for r in ("encoder", "decoder") if r in found and "int8" not in found[r].name]
    if full:
        _LOGGER.warning(
            "ZipVoice: int8 is true, but %s holds no int8 files; using the float32 %s",
            full[0].parent,
            " and ".join(path.name for path in full),
        )


def _download(options: ZipVoiceOptions, root: Path, name: str, wanted: str) -> Path:
    from huggingface_hub import hf_hub_download

    repo, filename = options.repo, f"{options.model}/{name}"
    _LOGGER.info("Downloading %s from %s", filename, repo)
    try:
        return Path(hf_hub_download(repo, filename, revision=options.revision, local_dir=root))
    except Exception as err:  # offline, 404, disk full: all mean "missing"
        raise EngineUnavailableError(
            f"ZipVoice model files missing: {wanted}; the download of {filename} from {repo} "
            f"failed: {type(err).__name__}: {err}"
        ) from err

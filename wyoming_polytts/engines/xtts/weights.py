"""Where XTTS-v2 weights come from: a configured folder, or a download into the cache.

A checkpoint folder holds ``model.pth``, ``config.json`` and ``vocab.json``, and
usually ``speakers_xtts.pth`` (the studio speakers). With ``allow_download`` the
files are fetched from the coqui/XTTS-v2 repository through huggingface_hub; the
weights are licensed under the Coqui Public Model License, which is logged
before any download.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ...errors import EngineUnavailableError

_LOGGER = logging.getLogger(__name__)

XTTS_REPO = "coqui/XTTS-v2"
REQUIRED_FILES = ("model.pth", "config.json", "vocab.json")
SPEAKERS_FILE = "speakers_xtts.pth"

CPML_NOTICE = (
    "The XTTS-v2 weights are licensed under the Coqui Public Model License 1.0.0 (CPML), "
    "which allows non-commercial use only: read https://coqui.ai/cpml before using them"
)


def missing_files(folder: Path) -> list[str]:
    """Required checkpoint files absent from ``folder``."""
    return [name for name in REQUIRED_FILES if not (folder / name).is_file()]


def locate_checkpoint(
    checkpoint_dir: Path | None,
    cache_folder: Path,
    allow_download: bool,
    revision: str | None = None,
) -> Path:
    """The folder to load XTTS from, downloading into ``cache_folder`` when allowed.

    A configured ``checkpoint_dir`` is used as it is and never downloaded into.
    Raises :class:`EngineUnavailableError` naming the missing files and the fix.
    """
    if checkpoint_dir is not None:
        missing = missing_files(checkpoint_dir)
        if missing:
            raise EngineUnavailableError(
                f"XTTS checkpoint folder {checkpoint_dir} lacks {', '.join(missing)}"
            )
        return checkpoint_dir
    missing = missing_files(cache_folder)
    if not missing:
        return cache_folder
    if not allow_download:
        raise EngineUnavailableError(
            f"XTTS weights not found: {', '.join(missing)} missing in {cache_folder}; set "
            f"engines.xtts.checkpoint_dir to a folder holding {', '.join(REQUIRED_FILES)} "
            f"(and {SPEAKERS_FILE}), or allow_download: true to fetch them from {XTTS_REPO}"
        )
    _download(cache_folder, revision)
    return cache_folder


def _download(folder: Path, revision: str | None) -> None:
    from huggingface_hub import hf_hub_download

    _LOGGER.warning("%s. Downloading XTTS-v2 from %s into %s", CPML_NOTICE, XTTS_REPO, folder)
    for filename in (*REQUIRED_FILES, SPEAKERS_FILE):
        if (folder / filename).is_file():
            continue
        try:
            hf_hub_download(XTTS_REPO, filename, revision=revision, local_dir=folder)
        except Exception as err:  # offline, 404, disk full: all mean "missing"
            raise EngineUnavailableError(
                f"XTTS weights missing: {', '.join(missing_files(folder)) or filename} not in "
                f"{folder}, and the download of {filename} from {XTTS_REPO} failed: "
                f"{type(err).__name__}: {err}"
            ) from err


def read_config(path: Path) -> dict[str, Any]:
    """A checkpoint's config.json as a dict; empty (with a warning) when unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        _LOGGER.warning("Cannot read %s: %s", path, err)
        return {}
    return data if isinstance(data, dict) else {}


def read_speaker_names(path: Path) -> list[str]:
    """Names of the studio speakers in a speakers_xtts.pth (imports torch).

    Read whole (a few MB): a file in torch's old, non-zip format cannot be memory-mapped.
    """
    import torch

    try:
        speakers = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file means no studio speakers, not a crash
        _LOGGER.warning("Cannot read XTTS studio speakers from %s: %s", path, err)
        return []
    return [str(name) for name in speakers]

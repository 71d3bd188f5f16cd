"""File operations of the voice library: contained, atomic, and clear about a full disk."""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile

from ..errors import InsufficientStorageError

_PARTIAL = re.compile(r"\..+\.[0-9a-f]{32}")
"""Names :func:`replace_file` writes before its rename: ``.<name>.<32 hex digits>``."""


@contextmanager
def disk_space(action: str) -> Iterator[None]:
    """A full disk (or quota) becomes :class:`InsufficientStorageError`."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorageError(
                f"cannot {action}: the disk holding the voice library is full"
            ) from err
        raise


def within(path: Path, folder: Path) -> bool:
    """Whether ``path``, links followed, stays inside ``folder`` (links followed)."""
    return path.resolve().is_relative_to(folder.resolve())


def remove_path(path: Path) -> None:
    """Delete a folder, or only the link when ``path`` is a link."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a hidden temporary file renamed over it."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        write_file(temporary, data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_partial_files(folder: Path) -> None:
    """Delete the temporary files :func:`replace_file` left in ``folder`` when the process
    died before its rename (a file's old version is still in place then)."""
    for entry in folder.iterdir():
        if _PARTIAL.fullmatch(entry.name) and not entry.is_dir():
            entry.unlink(missing_ok=True)

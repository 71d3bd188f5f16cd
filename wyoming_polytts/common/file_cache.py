"""Values derived from files, computed again only when a file changes.

A file counts as changed when its size or its modification time (in nanoseconds)
does: :func:`file_key` is that pair, and every cache keyed by a file's contents
uses it, in memory (:class:`FileCache`) or written into a cache on disk
(``str(key)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class FileKey(NamedTuple):
    """What tells one version of a file from another."""

    size: int
    """Bytes."""

    mtime_ns: int
    """Last modification, nanoseconds since the epoch."""

    def __str__(self) -> str:
        return f"{self.size}:{self.mtime_ns}"


def file_key(path: Path) -> FileKey:
    """The key of the file (or folder) at ``path``; raises OSError when it is absent."""
    stat = path.stat()
    return FileKey(stat.st_size, stat.st_mtime_ns)


class FileCache(Generic[T]):
    """``read(path)`` per file, kept while the file keeps its key; safe from any thread.

    The lock is held while a file is read, so a file is read once however many
    threads ask for it at the same time.
    """

    def __init__(self, read: Callable[[Path], T]) -> None:
        self._read = read
        self._values: dict[Path, tuple[FileKey, T]] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> T:
        """``read(path)``, from memory while the file is unchanged; OSError when it is
        absent (errors of ``read`` propagate and nothing is kept)."""
        try:
            key = file_key(path)
        except OSError:
            self._forget(path)
            raise
        return self._value(path, key)

    def get_or(self, path: Path, default: T) -> T:
        """:meth:`get`, or ``default`` when the file is absent."""
        try:
            key = file_key(path)
        except OSError:
            self._forget(path)
            return default
        return self._value(path, key)

    def _value(self, path: Path, key: FileKey) -> T:
        with self._lock:
            cached = self._values.get(path)
            if cached is None or cached[0] != key:
                cached = (key, self._read(path))
                self._values[path] = cached
            return cached[1]

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._values.pop(path, None)

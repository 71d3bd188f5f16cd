"""The cache of values derived from files: read once, read again when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wyoming_polytts.common.file_cache import FileCache, FileKey, file_key


def test_a_file_is_read_once_until_it_changes(tmp_path: Path) -> None:
    reads: list[Path] = []

    def read(path: Path) -> str:
        reads.append(path)
        return path.read_text()

    cache = FileCache(read)
    path = tmp_path / "voice.json"
    path.write_text("one")
    assert [cache.get(path) for _ in range(3)] == ["one"] * 3
    assert reads == [path]

    path.write_text("three")  # another size
    assert cache.get(path) == "three"
    key = file_key(path)
    path.write_text("THREE")  # same size, another modification time
    os.utime(path, ns=(key.mtime_ns + 1_000_000, key.mtime_ns + 1_000_000))
    assert cache.get(path) == "THREE"
    assert len(reads) == 3


def test_an_absent_file_raises_or_gives_the_default(tmp_path: Path) -> None:
    cache = FileCache(lambda path: path.read_text())
    path = tmp_path / "gone.txt"
    path.write_text("here")
    assert cache.get(path) == "here"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        cache.get(path)
    assert cache.get_or(path, "default") == "default"
    path.write_text("back")
    assert cache.get_or(path, "default") == "back"


def test_a_failed_read_is_not_kept(tmp_path: Path) -> None:
    attempts = []

    def read(path: Path) -> int:
        attempts.append(path)
        return int(path.read_text())

    cache = FileCache(read)
    path = tmp_path / "number.txt"
    path.write_text("not a number")
    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get(path)
    assert len(attempts) == 2


def test_the_key_is_size_and_modification_time(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"12345")
    os.utime(path, ns=(1_000, 2_000))
    assert file_key(path) == FileKey(size=5, mtime_ns=2_000)
    assert str(file_key(path)) == "5:2000"  # the form kept in caches on disk

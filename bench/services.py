"""The servers the benchmark compares, and their environments.

Ours runs as ``python -m wyoming_polytts`` (:class:`~.server_process.ServerProcess`);
wyoming-piper (and, for ``bench.upstream``, fastkokoro) runs from PyPI in a virtual
environment of its own that the harness creates once and reuses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .server_process import WyomingProcess, free_port
from .wyoming_client import HOST

WYOMING_PIPER_VERSION = "2.5.2"
"""The release the project's performance targets were measured against."""

DEFAULT_VENV = Path.home() / ".cache" / "wyoming-polytts" / "bench" / "wyoming-piper-venv"
"""Outside the checkout, so fresh clones (and CI runs) reuse it."""


def wyoming_piper_process(venv: Path, data_dir: Path, voice: str, log_dir: Path) -> WyomingProcess:
    """wyoming-piper serving ``voice`` from ``data_dir`` (not started); it downloads nothing."""
    port = free_port()
    argv = [
        str(venv / "bin" / "python"),
        "-m",
        "wyoming_piper",
        "--uri",
        f"tcp://{HOST}:{port}",
        "--voice",
        voice,
        "--data-dir",
        str(data_dir),
        "--download-dir",
        str(log_dir / "wyoming-piper-downloads"),
        "--local-files-only",
    ]
    return WyomingProcess("wyoming-piper", argv, port, log_dir / "wyoming-piper.log")


def ensure_wyoming_piper(venv: Path) -> Path:
    """Create (once) a virtual environment with wyoming-piper from PyPI; return it."""
    return ensure_venv(venv, f"wyoming-piper=={WYOMING_PIPER_VERSION}", "--no-wyoming-piper")


def ensure_venv(venv: Path, requirement: str, without: str) -> Path:
    """Create (once) a virtual environment with ``requirement`` (``name==version``) from
    PyPI; return it. ``without`` names the option that does without it, for the error."""
    marker = venv / f".{requirement.replace('==', '-')}"
    if marker.is_file():
        return venv
    print(f"bench: installing {requirement} into {venv}", file=sys.stderr, flush=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([*pip, requirement], check=True)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(
            f"could not install {requirement} into {venv} ({err}); "
            f"check the connection to PyPI or run with {without}"
        ) from err
    marker.touch()
    return venv


def installed_version(python: Path, package: str) -> str:
    """A package's version inside another environment."""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


@contextmanager
def derived_config(path: Path, overrides: Mapping[str, Any]) -> Iterator[Path]:
    """``path`` with dotted-key ``overrides`` applied, as a temporary file beside it.

    The copy lives in the same folder so relative paths in it still resolve the
    same way; it is removed afterwards. Without overrides, ``path`` itself.
    """
    if not overrides:
        yield path
        return
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in overrides.items():
        set_dotted(data, key, value)
    handle, name = tempfile.mkstemp(prefix=".bench-", suffix=".yaml", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        yaml.safe_dump(data, file)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` inside nested mappings, creating the missing ones."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value

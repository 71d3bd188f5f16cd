"""Servers under test as subprocesses on free loopback ports, and their environments.

Ours runs as ``python -m wyoming_polytts``; wyoming-piper runs from PyPI in a
virtual environment of its own that the harness creates once and reuses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .wyoming_client import HOST, describe

WYOMING_PIPER_VERSION = "2.5.2"
"""The release the project's performance targets were measured against."""

DEFAULT_VENV = Path.home() / ".cache" / "wyoming-polytts" / "bench" / "wyoming-piper-venv"
"""Outside the checkout, so fresh clones (and CI runs) reuse it."""

READY_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Service:
    """One server process: started, waited for, measured by pid, stopped."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self) -> None:
        """Wait until ``describe`` is answered (engines may still be loading)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log()[-2000:]}")
            try:
                await describe(self.port)
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer describe:\n{self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_polytts(config: Path, log_dir: Path) -> Service:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "wyoming_polytts",
        "--config",
        str(config),
        "--uri",
        f"tcp://{HOST}:{port}",
    ]
    return Service("wyoming-polytts", argv, port, log_dir / "polytts.log")


def start_wyoming_piper(venv: Path, data_dir: Path, voice: str, log_dir: Path) -> Service:
    """wyoming-piper serving ``voice`` from ``data_dir``; it downloads nothing."""
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
    return Service("wyoming-piper", argv, port, log_dir / "wyoming-piper.log")


def ensure_wyoming_piper(venv: Path) -> Path:
    """Create (once) a virtual environment with wyoming-piper from PyPI; return it."""
    marker = venv / f".wyoming-piper-{WYOMING_PIPER_VERSION}"
    if marker.is_file():
        return venv
    print(
        f"bench: installing wyoming-piper {WYOMING_PIPER_VERSION} into {venv}",
        file=sys.stderr,
        flush=True,
    )
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([*pip, f"wyoming-piper=={WYOMING_PIPER_VERSION}"], check=True)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(
            f"could not install wyoming-piper {WYOMING_PIPER_VERSION} into {venv} ({err}); "
            "check the connection to PyPI or run with --no-wyoming-piper"
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

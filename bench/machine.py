"""A description of the machine a run happened on: CPU, cores, memory, load, versions."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psutil

_PACKAGES = ("wyoming-polytts", "wyoming", "piper-tts", "onnxruntime", "numpy", "torch")


def describe_machine() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "logical cores": os.cpu_count(),
        "physical cores": psutil.cpu_count(logical=False),
        "memory": f"{memory.total / 2**30:.1f} GiB",
        "gpu": _gpus(),
        "load average at start": _load(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **{name: _version(name) for name in _PACKAGES},
    }


def finish_machine(machine: dict[str, Any]) -> None:
    """Add what is known only at the end (the load other processes put on the machine)."""
    machine["load average at end"] = _load()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "none"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi failed)"
    return "; ".join(line.split(" (UUID")[0] for line in out.splitlines() if line) or "none"


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"

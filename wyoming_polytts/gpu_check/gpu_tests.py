"""The tests marked ``gpu``, run by pytest against the weights the check was given.

Those tests find real weights through environment variables; this sets them
from the check's engine sections and runs ``pytest -m gpu`` in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from ..engines.base import EngineOptions
from .report import TestsOutcome


def gpu_test_environment(engines: dict[str, EngineOptions], base: Path) -> dict[str, str]:
    """Environment variables that point the ``gpu`` tests at the configured weights."""
    env: dict[str, str] = {}

    def path(value: str) -> str:
        return str((base / Path(value).expanduser()).resolve())

    for name, options in engines.items():
        settings = asdict(options)
        if name == "xtts" and settings.get("checkpoint_dir"):
            env["XTTS_CHECKPOINT_DIR"] = path(settings["checkpoint_dir"])
        elif name == "zipvoice" and settings.get("model_dir"):
            env["ZIPVOICE_MODEL_DIR"] = path(settings["model_dir"])
            keys = ("runtime", "model", "int8", "provider")
            env["ZIPVOICE_OPTIONS"] = json.dumps({key: settings[key] for key in keys})
        elif name == "glm_tts" and settings.get("python") and settings.get("checkout"):
            env["GLM_TTS_PYTHON"] = settings["python"]
            env["GLM_TTS_CHECKOUT"] = path(settings["checkout"])
    return env


def run_gpu_tests(tests: Path, env: dict[str, str]) -> TestsOutcome:
    """``pytest -m gpu`` on ``tests`` with ``env`` added; its exit code and closing line."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, str(tests)],
        env={**os.environ, **env},
        cwd=tests.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return TestsOutcome(done.returncode, lines[-1].strip("= ") if lines else done.stderr[-500:])

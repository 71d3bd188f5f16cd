"""Reliability figures that tests measure, gathered for docs/operations/reliability.md.

Tests call :func:`record`; each test module's figures are written to
``tests/artifacts/reliability-<module>.json`` (and printed with ``pytest -s``), so
anyone can rerun the tests and compare with that page's table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def record(module: str, name: str, value: Any) -> None:
    """Add (or replace) one figure of ``module`` (a test module's short name)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"reliability-{module}.json"
    figures = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    figures[name] = value
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"[figure] {module}: {name} = {value}")

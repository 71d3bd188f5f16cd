"""Server configuration: typed sections read from YAML, checked strictly.

Every option is documented in the repository's ``config.yaml``. Relative paths
are resolved against the folder of the config file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .const import DEFAULT_VOICE, DEFAULT_WYOMING_URI
from .engines import parse_engine_options
from .engines.base import EngineOptions
from .errors import ConfigError
from .schema import from_dict


def _require_positive(section: str, **values: float) -> None:
    for key, value in values.items():
        if value <= 0:
            raise ConfigError(f"{section}.{key}: expected a number above 0, got {value!r}")


@dataclass
class WyomingSettings:
    """The Wyoming front door."""

    uri: str = DEFAULT_WYOMING_URI
    zeroconf: bool = False
    zeroconf_name: str | None = None
    """Service name announced over mDNS; None uses the machine's MAC address."""

    samples_per_chunk: int = 1024
    """Samples per ``audio-chunk`` event."""

    def __post_init__(self) -> None:
        _require_positive("wyoming", samples_per_chunk=self.samples_per_chunk)


@dataclass
class TextSettings:
    """Limits on the text of one request."""

    max_chars: int = 20_000
    """Longest text one request (or one stream) may carry."""

    max_sentence_chars: int = 300
    """Sentences longer than this are split at clause boundaries, then at spaces."""

    def __post_init__(self) -> None:
        _require_positive(
            "text", max_chars=self.max_chars, max_sentence_chars=self.max_sentence_chars
        )


@dataclass
class PoolSettings:
    """The shared engine pool."""

    queue_size: int = 32
    """Requests that may wait per engine beyond those running; more get 'busy'."""

    lookahead: int = 2
    """Sentences of one request synthesized ahead of the one being sent."""

    threads: int | None = None
    """CPU threads engines may use in total; None means every core."""

    def __post_init__(self) -> None:
        _require_positive("pool", lookahead=self.lookahead)
        if self.queue_size < 0:
            raise ConfigError(f"pool.queue_size: expected 0 or more, got {self.queue_size!r}")
        if self.threads is not None:
            _require_positive("pool", threads=self.threads)


@dataclass
class Settings:
    """The whole configuration file."""

    default_voice: str = DEFAULT_VOICE
    """Voice used when a request names none."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    cache_dir: str = "~/.cache/wyoming-polytts"
    voices_dir: str = "voices"
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    text: TextSettings = field(default_factory=TextSettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    engines: dict[str, dict[str, Any] | None] = field(default_factory=lambda: {"piper": {}})
    """Engine name to its options; each engine checks its own section."""


@dataclass
class Config:
    """Settings plus every engine's checked options and the folders resolved."""

    settings: Settings
    engine_options: dict[str, EngineOptions]
    base_dir: Path
    """Folder relative paths are resolved against."""

    def path(self, value: str) -> Path:
        """Resolve a configured path (``~`` expanded, relative to the config file)."""
        return (self.base_dir / Path(value).expanduser()).resolve()

    @property
    def cache_dir(self) -> Path:
        return self.path(self.settings.cache_dir)

    @property
    def voices_dir(self) -> Path:
        return self.path(self.settings.voices_dir)

    @property
    def threads(self) -> int:
        return self.settings.pool.threads or os.cpu_count() or 1


def parse_config(data: Any, base_dir: Path) -> Config:
    """Check parsed YAML and build the configuration."""
    settings = from_dict(Settings, data)
    engine_options = {
        name: parse_engine_options(name, raw) for name, raw in settings.engines.items()
    }
    return Config(settings, engine_options, base_dir)


def load_config(path: Path | None) -> Config:
    """Read a YAML config file; None gives the defaults (Piper's embedded voice)."""
    if path is None:
        return parse_config({}, Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from err
    return parse_config(data, path.parent)

"""Configuration: defaults, strict checking, and the exit status for bad files."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from wyoming_polytts.config import load_config, parse_config
from wyoming_polytts.engines import parse_engine_options
from wyoming_polytts.engines.piper.engine import PiperOptions
from wyoming_polytts.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_repository_config_matches_defaults() -> None:
    """config.yaml documents the defaults: loading it changes nothing but paths."""
    shipped = load_config(REPO / "config.yaml")
    defaults = parse_config({}, REPO)
    assert replace(shipped.settings, engines={}) == replace(defaults.settings, engines={})
    assert set(defaults.engine_options) <= set(shipped.engine_options)
    for name, options in shipped.engine_options.items():
        enabled = name in defaults.engine_options
        assert options == parse_engine_options(name, {"enabled": enabled}), name


def test_defaults_speak_with_embedded_piper() -> None:
    config = parse_config(None, Path("/srv"))
    assert config.settings.default_voice == "en_US-joe-medium"
    piper = config.engine_options["piper"]
    assert isinstance(piper, PiperOptions)
    assert piper.voices == ["en_US-joe-medium"]
    assert config.path("voices") == Path("/srv/voices")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"wyoming": {"urx": 1}}, "wyoming.urx: unknown key"),
        (
            {"text": {"max_chars": "many"}},
            "text.max_chars: expected a whole number, got str 'many'",
        ),
        ({"text": {"max_chars": 0}}, "text.max_chars: expected a number above 0"),
        ({"catalog_refresh_interval": 0}, "catalog_refresh_interval: expected a number above 0"),
        ({"log_level": "LOUD"}, "log_level: expected one of 'DEBUG'"),
        ({"engines": {"nope": {}}}, "engines.nope: unknown engine"),
        (
            {"engines": {"piper": {"voices": "en_US-joe-medium"}}},
            "engines.piper.voices: expected a list",
        ),
        (
            {"engines": {"piper": {"use_cuda": "yes"}}},
            "engines.piper.use_cuda: expected true or false",
        ),
        ({"pool": {"queue_size": -1}}, "pool.queue_size: expected 0 or more"),
        (
            {"openai": {"trusted_proxies": ["supervisor"]}},
            "openai.trusted_proxies[0]: expected an IP address, got 'supervisor'",
        ),
        ({"openai": {"body_timeout": 0}}, "openai.body_timeout: expected a number above 0"),
        (["a"], "config: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_config(data, Path("."))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("wyoming: [unclosed", "not valid YAML at line 1"),
        (
            "engines:\n  piper:\n    concurrency: two\n",
            "engines.piper.concurrency: expected a whole number",
        ),
        ("bogus: 1\n", "bogus: unknown key"),
    ],
)
def test_bad_config_file_exits_2_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(content, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_polytts", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wyoming-polytts: config error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_polytts", "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr

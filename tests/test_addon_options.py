"""The add-on's options file (``/data/options.json``) as server configuration.

Sample options files for each option combination go through the real mapping
and the real config checks; bad values give the clear config error (exit 2 from
the CLI); and the server starts from an options file as the add-on runs it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from openai_shim import ShimSettings
from wyoming_polytts.addon_options import (
    MODELS_DIR,
    PIPER_DATA_DIRS,
    WYOMING_URI,
    AddonOptions,
    load_options_file,
    server_config,
)
from wyoming_polytts.const import EXIT_CONFIG_ERROR
from wyoming_polytts.errors import ConfigError

from .helpers import ServerProcess, default_ports_held, describe, get_json, listening, run_cli

REPO = Path(__file__).resolve().parent.parent


def _openai(enabled: bool, keys: list[str]) -> dict[str, Any]:
    return {
        "enabled": enabled,
        "host": "0.0.0.0",
        "port": 8880,
        "api_keys": keys,
        "trusted_proxies": ["172.30.32.2"],
        "allowed_hosts": ["homeassistant", "homeassistant.local"],
    }


def _options(**changes: Any) -> dict[str, Any]:
    return {**asdict(AddonOptions()), **changes}


def test_default_options_map_to_piper_on_the_addon_folders() -> None:
    assert server_config(AddonOptions()) == {
        "default_voice": "en_US-joe-medium",
        "log_level": "INFO",
        "cache_dir": MODELS_DIR,
        "voices_dir": "/config/voices",
        "wyoming": {"uri": "tcp://0.0.0.0:10200"},
        "openai": _openai(enabled=True, keys=[]),
        "engines": {
            "piper": {
                "voices": ["en_US-joe-medium"],
                "data_dirs": list(PIPER_DATA_DIRS),
                "allow_download": True,
            }
        },
    }


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"engines": ["kokoro"]}, {"engines": {"kokoro": {"allow_download": True}}}),
        (
            {"engines": ["piper", "kokoro"], "download_voices": False},
            {
                "engines": {
                    "piper": {
                        "voices": ["en_US-joe-medium"],
                        "data_dirs": list(PIPER_DATA_DIRS),
                        "allow_download": False,
                    },
                    "kokoro": {"allow_download": False},
                }
            },
        ),
        (
            {"engines": ["kokoro", "piper"], "piper_voices": ["de_DE-thorsten-high"]},
            {
                "engines": {
                    "kokoro": {"allow_download": True},
                    "piper": {
                        "voices": ["de_DE-thorsten-high"],
                        "data_dirs": list(PIPER_DATA_DIRS),
                        "allow_download": True,
                    },
                }
            },
        ),
        (
            {"piper_voices": [], "download_voices": False},
            {
                "engines": {
                    "piper": {
                        "voices": [],
                        "data_dirs": list(PIPER_DATA_DIRS),
                        "allow_download": False,
                    }
                }
            },
        ),
        (
            {"default_voice": " piper:en_US-joe-medium "},
            {"default_voice": "piper:en_US-joe-medium"},
        ),
        ({"voices_dir": "/share/polytts/voices"}, {"voices_dir": "/share/polytts/voices"}),
        (
            {"openai": True},
            {"openai": _openai(enabled=True, keys=[])},
        ),
        (
            {"openai": True, "openai_api_key": " sk-local-1 "},
            {"openai": _openai(enabled=True, keys=["sk-local-1"])},
        ),
        (
            {"openai": False, "openai_api_key": "sk-local-1"},
            {"openai": _openai(enabled=False, keys=["sk-local-1"])},
        ),
        ({"log_level": "debug"}, {"log_level": "DEBUG"}),
        ({"log_level": "warning"}, {"log_level": "WARNING"}),
    ],
)
def test_options_map_to_server_config(
    tmp_path: Path, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(_options(**changes)), encoding="utf-8")
    base = server_config(AddonOptions())
    assert server_config(AddonOptions(**changes)) == {**base, **expected}
    # The whole path the server takes: file -> options -> checked Config.
    config = load_options_file(path)
    settings = config.settings
    want = {**base, **expected}
    assert settings.default_voice == want["default_voice"]
    assert settings.log_level == want["log_level"]
    assert config.cache_dir == Path(MODELS_DIR)
    assert config.voices_dir == Path(want["voices_dir"])
    assert settings.wyoming.uri == WYOMING_URI
    assert list(config.engine_options) == list(want["engines"])
    openai = settings.openai
    assert {
        "enabled": openai.enabled,
        "host": openai.host,
        "port": openai.port,
        "api_keys": openai.api_keys,
        "trusted_proxies": openai.trusted_proxies,
        "allowed_hosts": openai.allowed_hosts,
    } == want["openai"]
    # Without a key, voices are managed only through the sidebar (ingress), not the port.
    shim = ShimSettings.from_config(config)
    assert shim.lock_voice_management is not openai.api_keys
    assert shim.trusted_proxies == {ipaddress.ip_address("172.30.32.2")}
    piper = config.engine_options.get("piper")
    if piper is not None:
        section = want["engines"]["piper"]
        assert (piper.voices, piper.data_dirs, piper.allow_download) == (  # type: ignore[attr-defined]
            section["voices"],
            section["data_dirs"],
            section["allow_download"],
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (_options(engines=[]), "add-on option engines: choose at least one engine"),
        (_options(engines=["espeak"]), "add-on option engines[0]: expected one of 'piper'"),
        (_options(log_level="loud"), "add-on option log_level: expected one of 'debug'"),
        (_options(default_voice=""), "add-on option default_voice: expected a voice name"),
        (_options(openai="yes"), "add-on option openai: expected true or false, got str 'yes'"),
        (_options(voices_dir="voices"), "add-on option voices_dir: expected an absolute path"),
        (_options(piper_voices="en_US-joe-medium"), "add-on option piper_voices: expected a list"),
        ({**_options(), "speed": 1.0}, "add-on option speed: unknown key"),
        ([], "add-on option config: expected a mapping"),
    ],
)
def test_bad_options_give_a_clear_error(tmp_path: Path, options: Any, message: str) -> None:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_options_file(path)
    assert str(caught.value).startswith(message), caught.value


def test_unreadable_options_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigError, match="cannot read options file"):
        load_options_file(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"engines": [', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_options_file(broken)


def test_cli_exits_2_on_a_bad_options_file(tmp_path: Path) -> None:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(_options(engines=["espeak"])), encoding="utf-8")
    result = run_cli("--options-file", str(path))
    assert result.returncode == EXIT_CONFIG_ERROR, result.stderr
    assert result.stderr.strip() == (
        "wyoming-polytts: config error: add-on option engines[0]: "
        "expected one of 'piper', 'kokoro', got 'espeak'"
    )
    both = run_cli("--options-file", str(path), "--config", str(REPO / "config.yaml"))
    assert both.returncode == EXIT_CONFIG_ERROR
    assert "--config and --options-file exclude each other" in both.stderr


async def test_server_runs_from_an_options_file(tmp_path: Path) -> None:
    """The add-on's run script, minus the container: options file in, voices out. The
    options say 0.0.0.0:10200 and 0.0.0.0:8880, which another server holds meanwhile: the
    test's server listens on free loopback ports all the same (the command line wins)."""
    path = tmp_path / "options.json"
    options = _options(voices_dir=str(tmp_path / "voices"), download_voices=False)
    path.write_text(json.dumps(options), encoding="utf-8")
    with default_ports_held():
        server = ServerProcess(tmp_path, source=["--options-file", str(path)]).start()
        try:
            info = await describe(server.port)
            voices = {voice.name for voice in info.tts[0].voices if voice.installed}
            assert "en_US-joe-medium" in voices
            assert (await get_json(server, "/health"))["ready"]
            expected = {("127.0.0.1", server.port), ("127.0.0.1", server.http_port)}
            assert listening(server.pid) == expected
        finally:
            assert server.stop() == 0, server.log()

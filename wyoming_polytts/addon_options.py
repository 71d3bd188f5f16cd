"""The Home Assistant add-on's options (``/data/options.json``) as server configuration.

The Supervisor writes the options a user set in the add-on's configuration tab
to ``/data/options.json``; ``wyoming-polytts --options-file`` reads that file
through :func:`load_options_file`. Everything the add-on decides (where models,
voices and the Wyoming and OpenAI listeners live inside the container) is here,
so the s6 run script stays one line. The defaults below equal the ``options``
in ``addon/config.yaml`` (a test keeps them in step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .common.schema import from_dict
from .config import Config, parse_config
from .const import DEFAULT_VOICE
from .errors import ConfigError

WYOMING_URI = "tcp://0.0.0.0:10200"
"""Inside the container; Home Assistant reaches it as ``tcp://<add-on hostname>:10200``."""

OPENAI_HOST = "0.0.0.0"
OPENAI_PORT = 8880
SUPERVISOR = "172.30.32.2"
"""The Supervisor's address on the add-ons' network: ingress requests come from it, for
users Home Assistant signed in (``openai.trusted_proxies``)."""

OPENAI_HOSTS = ["homeassistant", "homeassistant.local"]
"""Names Home Assistant's machine answers to, accepted as Host besides its IP addresses
(the container's own name is accepted anyway)."""
MODELS_DIR = "/data/models"
"""Downloaded weights; left out of backups (``backup_exclude`` in config.yaml)."""

PIPER_DATA_DIRS = ("/share/piper", "/share/wyoming-polytts/piper")
"""Folders searched for the user's own Piper voices (the first is the Piper add-on's)."""

AddonEngine = Literal["piper", "kokoro"]
"""Engines the add-on image installs (the CPU ones)."""

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass
class AddonOptions:
    """The add-on's options, as the Supervisor writes them."""

    engines: list[AddonEngine] = field(default_factory=lambda: ["piper"])
    """Engines to run, in order (a voice name two engines share goes to the first)."""

    default_voice: str = DEFAULT_VOICE
    """Voice used when a request names none."""

    piper_voices: list[str] = field(default_factory=lambda: [DEFAULT_VOICE])
    """Piper voices loaded at start."""

    download_voices: bool = True
    """Fetch what is missing: listed Piper voices, Kokoro's English voices."""

    voices_dir: str = "/config/voices"
    """The voice library folder (cloned voices)."""

    openai: bool = True
    """Serve the OpenAI-compatible speech API and the voices page on port 8880."""

    openai_api_key: str = ""
    """Key clients must send as a bearer token; empty means no key is needed."""

    log_level: LogLevel = "info"

    def __post_init__(self) -> None:
        if not self.engines:
            raise ConfigError("engines: choose at least one engine")
        if not self.default_voice.strip():
            raise ConfigError("default_voice: expected a voice name, got an empty text")
        if not self.voices_dir.startswith("/"):
            raise ConfigError(
                f"voices_dir: expected an absolute path such as /config/voices, "
                f"got {self.voices_dir!r}"
            )


def _engine_section(name: AddonEngine, options: AddonOptions) -> dict[str, Any]:
    if name == "piper":
        return {
            "voices": list(options.piper_voices),
            "data_dirs": list(PIPER_DATA_DIRS),
            "allow_download": options.download_voices,
        }
    return {"allow_download": options.download_voices}


def server_config(options: AddonOptions) -> dict[str, Any]:
    """The configuration (as in config.yaml) that the add-on's options stand for."""
    key = options.openai_api_key.strip()
    return {
        "default_voice": options.default_voice.strip(),
        "log_level": options.log_level.upper(),
        "cache_dir": MODELS_DIR,
        "voices_dir": options.voices_dir,
        "wyoming": {"uri": WYOMING_URI},
        "openai": {
            "enabled": options.openai,
            "host": OPENAI_HOST,
            "port": OPENAI_PORT,
            "api_keys": [key] if key else [],
            "trusted_proxies": [SUPERVISOR],
            "allowed_hosts": list(OPENAI_HOSTS),
        },
        "engines": {name: _engine_section(name, options) for name in options.engines},
    }


def load_options_file(path: Path) -> Config:
    """Read the add-on's options file and build the server configuration."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read options file ({err.strerror})") from err
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err
    try:
        options = from_dict(AddonOptions, data)
    except ConfigError as err:
        raise ConfigError(f"add-on option {err}") from err
    return parse_config(server_config(options), path.parent)

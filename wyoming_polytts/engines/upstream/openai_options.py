"""How an engine reaches an OpenAI-compatible speech server: the ``engines.openai_api``
section."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

from ...errors import ConfigError
from .options import LinkOptions

OWN_FIELDS = ("model", "input", "voice", "response_format", "speed", "instructions")
"""Body fields the engine sets itself, which ``extra_body`` may not."""


@dataclass
class OpenAIUpstreamOptions(LinkOptions):
    """The ``engines.openai_api`` config section (and ``openai_api-<label>`` sections)."""

    section: ClassVar[str] = "openai_api"

    base_url: str | None = None
    """The API's root, e.g. ``http://gpu-box:8091/v1`` (``/audio/speech`` is below it)."""

    api_key_env: str | None = None
    """Name of the environment variable that holds the API key; None: no key is sent."""

    model: str = "tts-1"
    """Sent as ``model`` with every request."""

    voices: list[str] | None = None
    """Voices to advertise, by the server's names; None: those ``GET /audio/voices`` lists."""

    languages: dict[str, list[str]] = field(default_factory=dict)
    """Languages (``en_US`` style) per voice, ``default`` for the rest, advertised when the
    server does not say; en_US when neither does."""

    response_format: Literal["pcm", "wav"] = "pcm"
    """pcm: 16-bit mono at ``sample_rate``, no header; wav: the header says the format."""

    sample_rate: int = 24000
    """Hertz of the server's pcm, and the rate every voice is advertised at (wav audio at
    another rate is resampled to it)."""

    extra_body: dict[str, Any] = field(default_factory=dict)
    """More fields for every request body (server-specific: ``stream``, ``lang`` ...)."""

    max_response_bytes: int = 32 << 20
    """Longest answer accepted for one sentence."""

    def __post_init__(self) -> None:
        super().__post_init__()
        where = f"engines.{self.section}"
        if self.sample_rate < 1000:
            raise ConfigError(f"{where}.sample_rate: expected Hertz, e.g. 24000")
        if self.max_response_bytes < 1:
            raise ConfigError(f"{where}.max_response_bytes: expected a number above 0")
        clash = sorted(set(self.extra_body) & set(OWN_FIELDS))
        if clash:
            raise ConfigError(
                f"{where}.extra_body.{clash[0]}: set by the engine itself "
                "(use the model option, or the request)"
            )
        for name, languages in self.languages.items():
            if not languages:
                raise ConfigError(f"{where}.languages.{name}: expected at least one language")
        if not self.enabled:
            return
        if self.base_url is None:
            raise ConfigError(
                f"{where}.base_url: expected the API's root, e.g. http://host:8880/v1"
            )
        url = urlparse(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"{where}.base_url: expected http(s)://host[:port]/path")
        if url.username or url.password:
            raise ConfigError(f"{where}.base_url: put the key in api_key_env, not in the URL")

    def api_key(self) -> str | None:
        """The key from the environment variable ``api_key_env`` names (read at start)."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ConfigError(
                f"engines.{self.section}.api_key_env: the environment variable "
                f"{self.api_key_env} is not set"
            )
        return key

    def languages_of(self, voice: str) -> list[str]:
        return self.languages.get(voice) or self.languages.get("default") or ["en_US"]

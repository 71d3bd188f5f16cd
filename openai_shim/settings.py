"""What the OpenAI app needs from the configuration, as one typed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wyoming_polytts.config import Config, VoiceLibrarySettings


@dataclass(frozen=True)
class ShimSettings:
    """Settings of the OpenAI-compatible front door."""

    api_keys: tuple[str, ...]
    """Bearer keys accepted for synthesis; empty leaves the API open."""

    max_input_chars: int
    voice_aliases: Mapping[str, str]
    """Client voice name to catalog voice name."""

    cors_origins: tuple[str, ...]
    """Origins allowed by CORS (``*`` for any); empty turns CORS off."""

    max_body_bytes: int
    max_sentence_chars: int
    lookahead: int
    """Sentences synthesized ahead of the one being sent."""

    voice_library: VoiceLibrarySettings
    write_timeout: float
    """Seconds a client may go without reading the audio sent to it before it is dropped."""

    @classmethod
    def from_config(cls, config: Config) -> ShimSettings:
        settings = config.settings
        openai = settings.openai
        return cls(
            api_keys=tuple(openai.api_keys),
            max_input_chars=openai.max_input_chars,
            voice_aliases=dict(openai.voice_aliases),
            cors_origins=tuple(openai.cors_origins),
            max_body_bytes=openai.max_body_bytes,
            max_sentence_chars=settings.text.max_sentence_chars,
            lookahead=settings.pool.lookahead,
            voice_library=settings.voice_library,
            write_timeout=settings.limits.write_timeout,
        )

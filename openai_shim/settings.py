"""What the OpenAI app needs from the configuration, as one typed value."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from wyoming_polytts.config import Config, VoiceLibrarySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    host: str
    """Address the API listens on."""

    body_timeout: float
    """Seconds a request body may take to arrive."""

    allowed_hosts: tuple[str, ...]
    """Host names accepted besides IP addresses, localhost and this machine's names."""

    trusted_proxies: frozenset[IPAddress]
    """Peers whose ``X-Ingress-Path`` requests were authenticated by the proxy."""

    lock_voice_management: bool
    """No API key and voice management not opened: changing voices is refused (403)."""

    @classmethod
    def from_config(cls, config: Config) -> ShimSettings:
        settings = config.settings
        openai = settings.openai
        opened = openai.open_voice_management
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
            host=openai.host,
            body_timeout=openai.body_timeout,
            allowed_hosts=tuple(openai.allowed_hosts),
            trusted_proxies=frozenset(ipaddress.ip_address(a) for a in openai.trusted_proxies),
            lock_voice_management=not openai.api_keys
            and not (is_loopback(openai.host) if opened is None else opened),
        )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the API on this machine (``0.0.0.0`` and names do not)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

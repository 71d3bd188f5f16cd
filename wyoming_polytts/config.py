"""Server configuration: typed sections read from YAML, checked strictly.

Every option is documented in the repository's ``config.yaml``. Relative paths
are resolved against the folder of the config file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .common.schema import from_dict
from .const import CATALOG_REFRESH_INTERVAL, DEFAULT_VOICE, DEFAULT_WYOMING_URI
from .engines import parse_engine_options
from .engines.base import EngineOptions
from .engines.placement import RaySettings, check_placement
from .errors import ConfigError
from .pool.memory import parse_budget


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

    max_header_bytes: int = 262_144
    """Longest event header line a client may send; longer closes the connection."""

    max_data_bytes: int = 1_048_576
    """Largest JSON data section of one event (the text travels there)."""

    max_payload_bytes: int = 1_048_576
    """Largest binary payload of one event (a TTS server reads none; skipped with an error)."""

    event_timeout: float = 10.0
    """Seconds from an event's first byte until all of it has arrived."""

    idle_timeout: float | None = 60.0
    """Seconds a connection may stay silent outside a stream, with nothing being answered;
    None keeps it open."""

    max_stream_seconds: float = 300.0
    """Seconds from synthesize-start to synthesize-stop; a longer stream ends with an error."""

    def __post_init__(self) -> None:
        _require_positive(
            "wyoming",
            samples_per_chunk=self.samples_per_chunk,
            max_header_bytes=self.max_header_bytes,
            max_data_bytes=self.max_data_bytes,
            max_payload_bytes=self.max_payload_bytes,
            event_timeout=self.event_timeout,
            max_stream_seconds=self.max_stream_seconds,
        )
        if self.idle_timeout is not None:
            _require_positive("wyoming", idle_timeout=self.idle_timeout)


@dataclass
class LimitsSettings:
    """What clients may hold open, on both front doors together (docs/operations/reliability.md)."""

    max_connections: int = 512
    """Connections open at once (Wyoming and HTTP); the one over it is refused."""

    max_connections_per_client: int = 64
    """Connections one client address may hold open."""

    max_streams: int = 64
    """Wyoming synthesize-start ... synthesize-stop streams open at once."""

    max_streams_per_client: int = 8
    """Streams one client address may hold open."""

    write_timeout: float = 20.0
    """Seconds a client may go without reading while audio waits for it; then it is
    disconnected and its place freed."""

    def __post_init__(self) -> None:
        _require_positive(
            "limits",
            max_connections=self.max_connections,
            max_connections_per_client=self.max_connections_per_client,
            max_streams=self.max_streams,
            max_streams_per_client=self.max_streams_per_client,
            write_timeout=self.write_timeout,
        )


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
    """Requests per engine that may wait for their first audio beyond those running;
    more get 'busy'. Requests already speaking take no place."""

    lookahead: int = 2
    """Sentences of one request synthesized ahead of the one being sent."""

    threads: int | None = None
    """CPU threads engines may use in total; None means every core."""

    gpu_memory_budget: int | str | None = None
    """Memory all loaded engines may hold together: bytes, text such as ``6GiB``, or a
    percentage of the GPU (``80%``); None: no budget. See docs/operations/lifecycle-metrics.md."""

    load_wait: float = 120.0
    """Seconds a request waits for its engine to finish loading before it fails."""

    load_retry_after: float = 30.0
    """Seconds after a failed load before a request may load the engine again."""

    job_timeout: float = 120.0
    """Seconds an engine may work on one sentence without handing over audio before the
    request fails with ``synthesis-timeout`` (docs/operations/reliability.md)."""

    heap_trim_interval: float | None = 60.0
    """Seconds between handing free heap pages back to the system (glibc's
    ``malloc_trim``; see :mod:`wyoming_polytts.pool.heap_trim`); None: never."""

    def __post_init__(self) -> None:
        _require_positive("pool", lookahead=self.lookahead)
        _require_positive("pool", load_wait=self.load_wait, job_timeout=self.job_timeout)
        if self.load_retry_after < 0:
            raise ConfigError(
                f"pool.load_retry_after: expected 0 or more, got {self.load_retry_after!r}"
            )
        if self.gpu_memory_budget is not None:
            parse_budget(self.gpu_memory_budget, "pool.gpu_memory_budget")
        if self.queue_size < 0:
            raise ConfigError(f"pool.queue_size: expected 0 or more, got {self.queue_size!r}")
        if self.threads is not None:
            _require_positive("pool", threads=self.threads)
        if self.heap_trim_interval is not None:
            _require_positive("pool", heap_trim_interval=self.heap_trim_interval)


@dataclass
class OpenAISettings:
    """The OpenAI-compatible HTTP front door (``openai_shim``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """Address the HTTP server binds to; loopback unless API keys protect it."""

    port: int = 8880
    api_keys: list[str] = field(default_factory=list)
    """Bearer keys accepted for synthesis; empty leaves the API open."""

    max_input_chars: int = 4096
    """Longest ``input`` of one speech request."""

    voice_aliases: dict[str, str] = field(default_factory=dict)
    """Voice name a client sends (e.g. OpenAI's ``alloy``) to a catalog voice.

    OpenAI's own voice names that are not listed speak with ``default_voice``.
    """

    cors_origins: list[str] = field(default_factory=list)
    """Browser origins allowed to call the API (``*`` for any); empty turns CORS off."""

    max_body_bytes: int = 1_048_576
    """Largest request body accepted; larger ones are refused with 413."""

    header_timeout: float = 30.0
    """Seconds a client has to send a request's headers (counted from connecting or from
    the previous response); also how long an idle keep-alive connection stays open."""

    body_timeout: float = 60.0
    """Seconds a client has to send a request's body once its headers are in; later: 408."""

    allowed_hosts: list[str] = field(default_factory=list)
    """Host names clients may address the API by, besides IP addresses, ``localhost`` and
    this machine's own names (``*``: any); other names are refused (DNS rebinding)."""

    trusted_proxies: list[str] = field(default_factory=list)
    """Peer addresses of an authenticating proxy (Home Assistant's ingress: 172.30.32.2);
    their requests carrying ``X-Ingress-Path`` need no API key and pass the browser checks."""

    open_voice_management: bool | None = None
    """Registering, changing and deleting voices without an API key: None allows it only
    when ``host`` is loopback; true always; false never."""

    def __post_init__(self) -> None:
        _require_positive(
            "openai",
            max_input_chars=self.max_input_chars,
            max_body_bytes=self.max_body_bytes,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
        )
        if not 0 < self.port < 65536:
            raise ConfigError(f"openai.port: expected a port from 1 to 65535, got {self.port}")
        for index, address in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_address(address)
            except ValueError as err:
                raise ConfigError(
                    f"openai.trusted_proxies[{index}]: expected an IP address, got {address!r}"
                ) from err


@dataclass
class VoiceLibrarySettings:
    """Limits for cloned voices' reference recordings."""

    sample_rate: int = 24_000
    """Hertz reference recordings are stored at."""

    min_seconds: float = 3.0
    max_seconds: float = 30.0
    """Bounds on the speech in a recording, after leading and trailing silence is trimmed."""

    max_upload_bytes: int = 10 * 1024 * 1024
    allow_url_voices: bool = False
    """Let clients register a voice from an http(s) URL (never loopback or private hosts)."""

    url_timeout: float = 20.0
    """Seconds a URL download may take in total."""

    def __post_init__(self) -> None:
        _require_positive(
            "voice_library",
            sample_rate=self.sample_rate,
            min_seconds=self.min_seconds,
            max_upload_bytes=self.max_upload_bytes,
            url_timeout=self.url_timeout,
        )
        if self.max_seconds < self.min_seconds:
            raise ConfigError("voice_library.max_seconds: expected at least min_seconds")


@dataclass
class Settings:
    """The whole configuration file."""

    default_voice: str = DEFAULT_VOICE
    """Voice used when a request names none."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_grace: float = 8.0
    """Seconds requests in progress get to finish after SIGTERM (docs/operations/reliability.md)."""

    cache_dir: str = "~/.cache/wyoming-polytts"
    voices_dir: str = "voices"
    catalog_refresh_interval: float = CATALOG_REFRESH_INTERVAL
    """Seconds the list of voices is kept before the engines' folders and the voice
    library are read again (a describe and the voice listing read them at once)."""

    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    text: TextSettings = field(default_factory=TextSettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    voice_library: VoiceLibrarySettings = field(default_factory=VoiceLibrarySettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    ray: RaySettings = field(default_factory=RaySettings)
    """The Ray cluster engines with ``placement: ray`` run on (docs/ray.md)."""

    engines: dict[str, dict[str, Any] | None] = field(default_factory=lambda: {"piper": {}})
    """Engine name to its options; each engine checks its own section."""

    def __post_init__(self) -> None:
        if self.shutdown_grace < 0:
            raise ConfigError(f"shutdown_grace: expected 0 or more, got {self.shutdown_grace!r}")
        if self.catalog_refresh_interval <= 0:
            raise ConfigError(
                "catalog_refresh_interval: expected a number above 0, "
                f"got {self.catalog_refresh_interval!r}"
            )


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
    for name, options in engine_options.items():
        if options.enabled:
            check_placement(f"engines.{name}", options.placement, options.ray, settings.ray)
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

"""How an upstream engine reaches its Wyoming server: the ``engines.wyoming`` section."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from ...errors import ConfigError
from ..base import EngineOptions


@dataclass
class WyomingUpstreamOptions(EngineOptions):
    """The ``engines.wyoming`` config section (and ``wyoming-<label>`` sections)."""

    uri: str | None = None
    """``tcp://host:port`` (or ``unix://path``) of a Wyoming TTS server."""

    command: list[str] | None = None
    """A program serving Wyoming on stdin/stdout (usually with ``--uri stdio://``)."""

    prefix: str = ""
    """Put before every upstream voice name in the catalog."""

    voices: list[str] = field(default_factory=list)
    """Upstream voices to advertise (their own names); empty: all."""

    sample_rate: int | None = None
    """Hertz advertised for every voice (audio is resampled to it); None: each voice's
    rate as its first audio shows it (22050 until then)."""

    connect_timeout: float = 5.0
    """Seconds to connect (TCP), or to wait for a restarting child (stdio)."""

    request_timeout: float = 60.0
    """Seconds the upstream may go silent during an answer."""

    start_timeout: float = 60.0
    """Seconds a started child may take to answer its first describe."""

    refresh_interval: float = 30.0
    """Seconds between two describes of an upstream that is up."""

    max_backoff: float = 60.0
    """Longest pause between attempts to reach (or restart) a failing upstream."""

    def __post_init__(self) -> None:
        timings = ("connect_timeout", "request_timeout", "start_timeout", "refresh_interval")
        for key in (*timings, "max_backoff"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"engines.wyoming.{key}: expected a number above 0")
        if self.sample_rate is not None and self.sample_rate < 1000:
            raise ConfigError("engines.wyoming.sample_rate: expected Hertz, e.g. 22050")
        if not self.enabled:
            return
        if (self.uri is None) == (self.command is None):
            raise ConfigError("engines.wyoming: give either uri or command (exactly one)")
        if self.command is not None:
            if not self.command:
                raise ConfigError("engines.wyoming.command: expected the program and arguments")
            if (self.concurrency or 1) > 1:
                raise ConfigError(
                    "engines.wyoming.concurrency: a child process serves one request at a "
                    "time; use a tcp:// upstream, or another section, for more"
                )
        elif urlparse(self.uri).scheme not in ("tcp", "unix"):
            raise ConfigError(f"engines.wyoming.uri: expected tcp://host:port, got {self.uri!r}")

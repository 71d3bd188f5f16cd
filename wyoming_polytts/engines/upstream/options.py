"""How an upstream engine reaches its server: the ``engines.wyoming`` section and the
timings every upstream section shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlparse

from ...errors import ConfigError
from ..base import EngineOptions
from .link import LinkTimings


@dataclass
class LinkOptions(EngineOptions):
    """Timeouts and intervals of an upstream section (see :class:`~.link.LinkTimings`)."""

    section: ClassVar[str]
    """The engine's section name, for error messages."""

    prefix: str = ""
    """Put before every upstream voice name in the catalog."""

    connect_timeout: float = 5.0
    """Seconds to connect, or to wait for a restarting child (stdio)."""

    request_timeout: float = 60.0
    """Seconds the upstream may go silent during an answer."""

    refresh_interval: float = 30.0
    """Seconds between two questions for the voices of an upstream that is up."""

    max_backoff: float = 60.0
    """Longest pause between attempts to reach (or restart) a failing upstream."""

    def __post_init__(self) -> None:
        for key in ("connect_timeout", "request_timeout", "refresh_interval", "max_backoff"):
            self.require_positive(key)

    def require_positive(self, key: str) -> None:
        if getattr(self, key) <= 0:
            raise ConfigError(f"engines.{self.section}.{key}: expected a number above 0")

    def timings(self, start: float) -> LinkTimings:
        """The link's timings; ``start`` is how long a started child may take to answer."""
        return LinkTimings(
            connect=self.connect_timeout,
            request=self.request_timeout,
            start=start,
            refresh=self.refresh_interval,
            max_backoff=self.max_backoff,
        )


@dataclass
class WyomingUpstreamOptions(LinkOptions):
    """The ``engines.wyoming`` config section (and ``wyoming-<label>`` sections)."""

    section: ClassVar[str] = "wyoming"

    uri: str | None = None
    """``tcp://host:port`` (or ``unix://path``) of a Wyoming TTS server."""

    command: list[str] | None = None
    """A program serving Wyoming on stdin/stdout (usually with ``--uri stdio://``)."""

    voices: list[str] = field(default_factory=list)
    """Upstream voices to advertise (their own names); empty: all."""

    sample_rate: int | None = None
    """Hertz advertised for every voice (audio is resampled to it); None: each voice's
    rate as its first audio shows it (22050 until then)."""

    start_timeout: float = 60.0
    """Seconds a started child may take to answer its first describe."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_positive("start_timeout")
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

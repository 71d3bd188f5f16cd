"""Voices of another Wyoming TTS server, as an engine of the pool.

The upstream is reached over the network (``uri: tcp://host:port``, a new
connection per request) or started as a supervised child process that speaks
Wyoming on its stdin and stdout (``command: [...]``, one request at a time).
Its voices (from its ``info``, refreshed periodically and on reconnect) are
advertised as ``<prefix><name>``; while it is down they are listed as not
installed, with the reason. Each sentence goes to the upstream as a
synthesize-start/chunk/stop stream when it supports streaming, else as one
synthesize; audio is relayed as it arrives, resampled (soxr) to the rate the
stream declared.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import aclosing
from functools import partial
from typing import Any

import numpy as np
from wyoming.info import TtsVoice
from wyoming.tts import SynthesizeVoice

from ...common.echo import clip
from ...errors import EngineUnavailableError, PolyttsError, VoiceNotFoundError
from ..base import (
    Attribution,
    Capabilities,
    EngineContext,
    OptionsT,
    SynthesisRequest,
    VoiceInfo,
)
from .audio import Resampler
from .client import Audio, Conversation, PieceStream, UpstreamInfo, request_failure, synthesize
from .link import Link
from .linked import LinkedEngine
from .options import WyomingUpstreamOptions
from .process import StdioLink, command_label
from .tcp import TcpLink

_LOGGER = logging.getLogger(__name__)

DEFAULT_RATE = 22050
"""Advertised for a voice until its first audio shows its rate (Piper's usual rate)."""

_FALLBACK_ATTRIBUTION = Attribution("Wyoming upstream", "https://github.com/OHF-Voice/wyoming")


class UpstreamEngine(LinkedEngine[OptionsT, Link[UpstreamInfo, Conversation]]):
    """The voices of one Wyoming TTS server, relayed sentence by sentence; a subclass
    says how to reach the server (:meth:`upstream_options`)."""

    capabilities = Capabilities(native_speed=False)

    def __init__(self, options: OptionsT, context: EngineContext) -> None:
        super().__init__(options, context)
        self.upstream = self.upstream_options()
        command = self.upstream.command
        self.label = command_label(command) if command else str(self.upstream.uri)
        self._info: UpstreamInfo | None = None
        self._rates: dict[str, int] = {}
        """Upstream voice name to the rate of its audio, learned from the first answer."""

    @abstractmethod
    def upstream_options(self) -> WyomingUpstreamOptions:
        """How to reach the upstream (presets such as glm_tts build it from their own)."""

    @property
    def concurrency(self) -> int:
        if self.upstream.command is not None:
            return 1  # one connection: requests take turns
        return super().concurrency

    # --- voices -----------------------------------------------------------

    def voices(self) -> list[VoiceInfo]:
        info = self._info
        if info is None:
            return []
        unavailable = self._down_reason()
        wanted = set(self.upstream.voices)
        return [
            self._voice_info(voice, unavailable)
            for voice in info.voices
            if not wanted or voice.name in wanted
        ]

    def _voice_info(self, voice: TtsVoice, unavailable: str | None) -> VoiceInfo:
        reason = unavailable
        if reason is None and not voice.installed:
            reason = f"upstream {self.label} lists it as not installed"
        attribution = voice.attribution
        return VoiceInfo(
            id=self.upstream.prefix + voice.name,
            sample_rate=self._rate(voice.name),
            languages=list(voice.languages),
            description=voice.description or voice.name,
            attribution=Attribution(attribution.name, attribution.url)
            if attribution.name
            else _FALLBACK_ATTRIBUTION,
            speakers=[speaker.name for speaker in voice.speakers or []],
            installed=reason is None,
            reason=reason,
            version=voice.version,
        )

    def _rate(self, name: str) -> int:
        return self.upstream.sample_rate or self._rates.get(name) or DEFAULT_RATE

    def _remember(self, info: UpstreamInfo) -> None:
        """Called on the private loop with every fresh info."""
        changed = self._info is None or self._info.voices != info.voices
        self._info = info
        if changed:
            _LOGGER.info("Upstream %s offers %d voices", self.label, len(info.voices))
            self.voices_changed()

    # --- loading ----------------------------------------------------------

    def _new_link(self) -> tuple[Link[UpstreamInfo, Conversation], float]:
        """Connect (or start the child); the load waits for its first answer, or failure."""
        options = self.upstream
        timings = options.timings(options.start_timeout)
        if options.command is not None:
            self.report_progress(f"starting {' '.join(options.command)}")
            link = StdioLink(
                self.label, options.command, timings, self._remember, self.voices_changed
            )
            return link, options.start_timeout
        tcp = TcpLink(str(options.uri), timings, self._remember, self.voices_changed)
        return tcp, options.connect_timeout + options.request_timeout

    def _load_failure(self, link: Link[UpstreamInfo, Conversation]) -> PolyttsError | None:
        """A command that cannot be started at all fails the load."""
        if isinstance(link, StdioLink) and link.spawn_failed:
            return EngineUnavailableError(f"upstream {self.label}: {link.error}")
        return None

    def health(self) -> dict[str, Any]:
        voices = len(self._info.voices) if self._info is not None else 0
        return {**self._link_health(), "voices": voices}

    def memory_usage(self) -> int | None:
        """Nothing in this process: 0, or a child's resident memory."""
        link = self._link
        return link.resident_bytes() if isinstance(link, StdioLink) else 0

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        loop, link = self._connected()
        info = self._info
        if info is None:
            raise link.unavailable()
        name = request.voice.removeprefix(self.upstream.prefix)
        if not request.voice.startswith(self.upstream.prefix) or not any(
            voice.name == name for voice in info.voices
        ):
            raise VoiceNotFoundError(f"upstream {self.label} has no voice '{clip(request.voice)}'")
        voice = SynthesizeVoice(name=name, speaker=request.speaker)
        exchange = partial(self._exchange, link, request.text, voice, info.streaming)
        stream = PieceStream(loop, exchange, cancel_on_close=not link.reusable)
        resampler = Resampler(request.sample_rate or self._rate(name))

        def seen(audio: Audio) -> None:
            if name not in self._rates:
                self._rates[name] = audio.rate
                self.voices_changed()  # its advertised rate is known now

        yield from self._relay(stream, resampler, seen)

    async def _exchange(
        self,
        link: Link[UpstreamInfo, Conversation],
        text: str,
        voice: SynthesizeVoice,
        streaming: bool,
        put: Callable[[Audio], None],
        abandoned: threading.Event,
    ) -> None:
        """One sentence on the private loop; audio goes to ``put`` until ``abandoned``."""
        label = f"upstream {link.label}"
        try:
            async with (
                link.connection() as conversation,
                aclosing(
                    synthesize(conversation, text, voice, streaming, link.reusable, label)
                ) as answer,
            ):
                async for audio in answer:
                    if not abandoned.is_set():
                        put(audio)
                    elif not link.reusable:
                        return
                    # else drain: the shared connection must end the answer in step
        except (TimeoutError, OSError) as err:
            raise request_failure(link.label, err, link.timings.request) from err


class WyomingUpstreamEngine(UpstreamEngine[WyomingUpstreamOptions]):
    """A Wyoming TTS server named in an ``engines.wyoming`` (or ``wyoming-<label>``) section."""

    name = "wyoming"

    def upstream_options(self) -> WyomingUpstreamOptions:
        return self.options

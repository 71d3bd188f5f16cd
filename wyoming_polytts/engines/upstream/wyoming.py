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
from ...errors import EngineUnavailableError, VoiceNotFoundError
from ..base import (
    Attribution,
    Capabilities,
    Engine,
    EngineContext,
    OptionsT,
    SynthesisRequest,
    VoiceInfo,
)
from .audio import Resampler, mono_int16
from .client import Audio, LoopThread, PieceStream, UpstreamInfo, synthesize
from .link import Link, LinkState, LinkTimings, TcpLink, request_failure
from .options import WyomingUpstreamOptions
from .process import StdioLink, command_label

_LOGGER = logging.getLogger(__name__)

DEFAULT_RATE = 22050
"""Advertised for a voice until its first audio shows its rate (Piper's usual rate)."""

_FALLBACK_ATTRIBUTION = Attribution("Wyoming upstream", "https://github.com/OHF-Voice/wyoming")


class UpstreamEngine(Engine[OptionsT]):
    """The voices of one Wyoming TTS server, relayed sentence by sentence; a subclass
    says how to reach the server (:meth:`upstream_options`)."""

    capabilities = Capabilities(native_speed=False)
    default_concurrency = 2

    def __init__(self, options: OptionsT, context: EngineContext) -> None:
        super().__init__(options, context)
        self.upstream = self.upstream_options()
        command = self.upstream.command
        self.label = command_label(command) if command else str(self.upstream.uri)
        self._info: UpstreamInfo | None = None
        self._rates: dict[str, int] = {}
        """Upstream voice name to the rate of its audio, learned from the first answer."""

        self._loop: LoopThread | None = None
        self._link: Link | None = None

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
        link = self._link
        unavailable = None
        if link is not None and link.state is LinkState.DOWN:
            unavailable = str(link.unavailable())
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

    def _timings(self) -> LinkTimings:
        options = self.upstream
        return LinkTimings(
            connect=options.connect_timeout,
            request=options.request_timeout,
            start=options.start_timeout,
            refresh=options.refresh_interval,
            max_backoff=options.max_backoff,
        )

    def load(self) -> None:
        """Connect (or start the child) and wait for its first answer, or for it to fail.

        An upstream that is down does not fail the load: its voices come when it does.
        A command that cannot be started at all does.
        """
        options = self.upstream
        loop = LoopThread(f"polytts-{self.label}")
        link: Link
        if options.command is not None:
            self.report_progress(f"starting {' '.join(options.command)}")
            link = StdioLink(
                self.label, options.command, self._timings(), self._remember, self.voices_changed
            )
            wait = options.start_timeout
        else:
            link = TcpLink(str(options.uri), self._timings(), self._remember, self.voices_changed)
            wait = options.connect_timeout + options.request_timeout
        loop.run(link.start())
        loop.run(link.first_attempt(wait))
        if isinstance(link, StdioLink) and link.spawn_failed:
            error = EngineUnavailableError(f"upstream {self.label}: {link.error}")
            loop.run(link.stop())
            loop.stop()
            raise error
        self._loop, self._link = loop, link

    def unload(self) -> None:
        """Close the link (stopping a child process); the voices stay listed."""
        loop, link = self._loop, self._link
        self._loop = self._link = None
        if loop is not None and link is not None:
            loop.run(link.stop())
            loop.stop()

    def health(self) -> dict[str, Any]:
        link = self._link
        details = link.health() if link is not None else {"ok": True, "state": "stopped"}
        voices = len(self._info.voices) if self._info is not None else 0
        return {"upstream": self.label, **details, "voices": voices}

    def memory_usage(self) -> int | None:
        """Nothing in this process: 0, or a child's resident memory."""
        link = self._link
        return link.resident_bytes() if isinstance(link, StdioLink) else 0

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        loop, link, info = self._loop, self._link, self._info
        if loop is None or link is None:
            raise EngineUnavailableError(f"upstream {self.label} is not connected")
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
        try:
            for audio in stream:
                if name not in self._rates:
                    self._rates[name] = audio.rate
                    self.voices_changed()  # its advertised rate is known now
                pcm = resampler.convert(mono_int16(audio), audio.rate)
                if pcm.size:
                    yield pcm
            tail = resampler.flush()
            if tail.size:
                yield tail
        finally:
            stream.close()

    async def _exchange(
        self,
        link: Link,
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

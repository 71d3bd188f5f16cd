"""Voices of an OpenAI-compatible speech server, as an engine of the pool.

vLLM-Omni, Kokoro-FastAPI, speaches, another wyoming-polytts and OpenAI itself
serve ``POST /v1/audio/speech``. Their voices (listed by ``GET
/audio/voices``, or named in the config) are advertised as ``<prefix><name>``;
while the server is down, refuses the key or answers with server errors they
are listed as not installed, with the reason (the state machine of
``link.py``, shared with the Wyoming upstreams). Each sentence goes as one
request with the engine's model and the voice, speed as OpenAI's ``speed`` and
``instructions`` when the request has them; its audio (pcm, or wav read
header first) is relayed as it arrives, resampled to the advertised rate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np

from ...common.echo import clip
from ...errors import VoiceNotFoundError
from ..base import Attribution, Capabilities, EngineContext, SynthesisRequest, VoiceInfo
from .audio import Resampler
from .client import PieceStream
from .http_link import AudioDecoder, SpeechServerLink
from .linked import LinkedEngine
from .listing import ListedVoice
from .openai_options import OpenAIUpstreamOptions
from .wav_stream import PcmStream, WavStream

_LOGGER = logging.getLogger(__name__)

INSTRUCTIONS = "instructions"
"""The request option carrying a style prompt (OpenAI's ``instructions``)."""


class OpenAIUpstreamEngine(LinkedEngine[OpenAIUpstreamOptions, SpeechServerLink]):
    """An ``engines.openai_api`` (or ``openai_api-<label>``) section."""

    name = "openai_api"
    capabilities = Capabilities(native_speed=True)
    option_keys = frozenset({INSTRUCTIONS})

    def __init__(self, options: OpenAIUpstreamOptions, context: EngineContext) -> None:
        super().__init__(options, context)
        assert options.base_url is not None  # checked with the config
        self.label = options.base_url.rstrip("/")
        self._key = options.api_key()
        self._voices: list[ListedVoice] | None = None
        """What the server offers; the configured voices until it has answered."""

        if options.voices is not None:
            self._voices = [ListedVoice(name) for name in options.voices]

    # --- voices -----------------------------------------------------------

    def voices(self) -> list[VoiceInfo]:
        listed = self._voices
        if listed is None:
            return []  # the server has not answered yet
        unavailable = self._down_reason()
        return [self._voice_info(voice, unavailable) for voice in listed]

    def _voice_info(self, voice: ListedVoice, unavailable: str | None) -> VoiceInfo:
        options = self.options
        reason = unavailable
        if reason is None and not voice.installed:
            reason = voice.reason or f"upstream {self.label} lists it as not installed"
        return VoiceInfo(
            id=options.prefix + voice.name,
            sample_rate=options.sample_rate,
            languages=voice.languages or options.languages_of(voice.name),
            description=voice.description or f"{voice.name} ({options.model})",
            attribution=Attribution(options.model, self.label),
            installed=reason is None,
            reason=reason,
        )

    def _remember(self, voices: list[ListedVoice]) -> None:
        """Called on the private loop with every fresh voice list."""
        if voices != self._voices:
            _LOGGER.info("Upstream %s offers %d voices", self.label, len(voices))
            self._voices = voices
            self.voices_changed()

    # --- loading ----------------------------------------------------------

    def _new_link(self) -> tuple[SpeechServerLink, float]:
        options = self.options
        link = SpeechServerLink(
            self.label,
            self._key,
            options.voices,
            self.concurrency,
            options.timings(options.connect_timeout),
            self._remember,
            self.voices_changed,
        )
        return link, options.connect_timeout + options.request_timeout

    def health(self) -> dict[str, Any]:
        return {**self._link_health(), "voices": len(self._voices or [])}

    def memory_usage(self) -> int | None:
        return 0  # nothing in this process

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        loop, link = self._connected()
        options = self.options
        name = request.voice.removeprefix(options.prefix)
        known = self._voices or []
        if not request.voice.startswith(options.prefix) or all(v.name != name for v in known):
            raise VoiceNotFoundError(f"upstream {self.label} has no voice '{clip(request.voice)}'")
        body: dict[str, Any] = {
            **options.extra_body,
            "model": options.model,
            "input": request.text,
            "voice": name,
            "response_format": options.response_format,
        }
        if request.speed is not None and request.speed != 1.0:
            body["speed"] = request.speed
        if request.options.get(INSTRUCTIONS):
            body[INSTRUCTIONS] = request.options[INSTRUCTIONS]
        decoder: AudioDecoder = (
            PcmStream(options.sample_rate) if options.response_format == "pcm" else WavStream()
        )
        speech = partial(link.speech, body, decoder, options.max_response_bytes)
        stream = PieceStream(loop, speech, cancel_on_close=True)
        yield from self._relay(stream, Resampler(request.sample_rate or options.sample_rate))

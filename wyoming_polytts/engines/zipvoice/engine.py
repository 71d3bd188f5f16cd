"""ZipVoice (k2-fsa): zero-shot cloning with flow matching, Chinese and English, 24 kHz.

Its voices are the voice library's voices that allow ZipVoice. ZipVoice clones
from a recording *and its transcript*, so a voice without a transcript is listed
as not installed, with the reason and the fix. The model runs in-process on
sherpa-onnx (the ONNX export; CPU, or CUDA with a CUDA build), or with
``runtime: torch`` on the official ZipVoice package where it is installed.
Each call speaks one sentence; a voice's prompt is prepared once and reused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ...common.audio import shorten_silences, to_int16
from ...common.language import match_language
from ...common.reference_voice import ReferenceVoice
from ...errors import (
    EngineUnavailableError,
    InvalidRequestError,
    InvalidTextError,
    VoiceNotFoundError,
)
from ..base import (
    Attribution,
    Capabilities,
    Engine,
    EngineContext,
    SynthesisRequest,
    VoiceInfo,
)
from .options import REQUEST_KEYS, Sampling, ZipVoiceOptions, sampling
from .prompt import Prompt, PromptCache
from .tokens import Tokenizer

_LOGGER = logging.getLogger(__name__)

_ATTRIBUTION = Attribution("k2-fsa", "https://github.com/k2-fsa/ZipVoice")
SAMPLE_RATE = 24000
"""ZipVoice's output rate (its Vocos vocoder's)."""

LANGUAGES = ("en_US", "zh_CN")
"""What ZipVoice's Emilia model speaks: English through espeak-ng, Mandarin through pinyin."""

_EDGE_SECONDS = 0.1
"""Silence kept before and after each sentence's speech."""

_CHAR_LIMIT = 250
"""Longest sentence one call takes: one generation covers the prompt plus the sentence."""

NO_TRANSCRIPT = (
    "no transcript: ZipVoice needs the words spoken in the recording; add them with "
    'PATCH /v1/audio/voices/{id} {{"transcript": ...}} or in the voice\'s voice.yaml'
)


class _Runtime(Protocol):
    sample_rate: int

    def generate(self, prompt: Prompt, tokens: list[str], sampling: Sampling) -> np.ndarray: ...


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Tokenizer
    runtime: _Runtime
    prompts: PromptCache


class ZipVoiceEngine(Engine[ZipVoiceOptions]):
    """One ZipVoice model (``concurrency`` instances) speaking with library voices."""

    name = "zipvoice"
    capabilities = Capabilities(cloning=True, needs_transcript=True, max_sentence_chars=_CHAR_LIMIT)
    option_keys = frozenset(REQUEST_KEYS)
    default_concurrency = 1

    def __init__(self, options: ZipVoiceOptions, context: EngineContext) -> None:
        super().__init__(options, context)
        self._loaded: _Loaded | None = None

    # --- voices -----------------------------------------------------------

    def voices(self) -> list[VoiceInfo]:
        infos = []
        for voice in self.context.reference_voices.for_engine(self.name):
            own = [code for code in voice.languages if match_language(code, LANGUAGES)]
            others = [code for code in LANGUAGES if not match_language(code, own)]
            reason = None if voice.transcript else NO_TRANSCRIPT.format(id=voice.id)
            infos.append(
                VoiceInfo(
                    id=voice.id,
                    sample_rate=SAMPLE_RATE,
                    languages=[*own, *others],
                    description=voice.description or f"Voice {voice.id} cloned with ZipVoice",
                    attribution=_ATTRIBUTION,
                    installed=reason is None,
                    reason=reason,
                )
            )
        return infos

    # --- loading ----------------------------------------------------------

    def load(self) -> None:
        from .weights import TORCH_ROLES, locate, onnx_roles

        options = self.options
        threads = options.threads or max(1, self.context.threads // self.concurrency)
        runtime: _Runtime
        if options.runtime == "torch":
            from .torch_runtime import TorchRuntime, require_official_package

            require_official_package()
            files = locate(options, self.context, TORCH_ROLES, self.report_progress)
            tokenizer = Tokenizer(files["tokens"])
            vocoder = self.context.path(options.vocoder) if options.vocoder else None
            runtime = TorchRuntime(files, tokenizer.table, options, threads, vocoder)
        else:
            from .runtime import SherpaRuntime

            files = locate(options, self.context, onnx_roles(options.int8), self.report_progress)
            tokenizer = Tokenizer(files["tokens"])
            runtime = SherpaRuntime(files, self.concurrency, threads, options.provider)
        if runtime.sample_rate != SAMPLE_RATE:
            raise EngineUnavailableError(
                f"the ZipVoice model speaks at {runtime.sample_rate} Hz; expected {SAMPLE_RATE}"
            )
        prompts = PromptCache(tokenizer, SAMPLE_RATE, options.max_prompt_seconds)
        self._loaded = _Loaded(tokenizer, runtime, prompts)

    def unload(self) -> None:
        self._loaded = None

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        loaded = self._loaded
        if loaded is None:
            raise EngineUnavailableError("the ZipVoice engine is not loaded")
        settings = sampling(self.options, request.options, request.speed)
        if request.language and not match_language(request.language, LANGUAGES):
            raise InvalidRequestError(
                f"ZipVoice does not speak '{request.language}' (it speaks {', '.join(LANGUAGES)})"
            )
        voice = self._voice(request.voice)
        prompt = loaded.prompts.get(voice)
        tokens = loaded.tokenizer(request.text)
        if not any(token.isalnum() for token in tokens):
            raise InvalidTextError(f"ZipVoice finds nothing to pronounce in {request.text[:80]!r}")
        _LOGGER.debug("ZipVoice %s (%s steps): %r", voice.id, settings.num_steps, request.text[:80])
        audio = loaded.runtime.generate(prompt, tokens, settings)
        # As ZipVoice's own inference does: no long silence before or after the speech.
        yield to_int16(shorten_silences(audio, SAMPLE_RATE, _EDGE_SECONDS, None))

    def _voice(self, voice_id: str) -> ReferenceVoice:
        voice = self.context.reference_voices.find(self.name, voice_id)
        if voice is None:
            raise VoiceNotFoundError(f"ZipVoice has no voice '{voice_id}'")
        if not voice.transcript:
            raise EngineUnavailableError(
                f"voice '{voice_id}' cannot be used: {NO_TRANSCRIPT.format(id=voice_id)}"
            )
        return voice

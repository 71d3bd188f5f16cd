"""XTTS-v2 (coqui-tts): 17 languages, zero-shot cloning, audio streamed below the sentence.

Voices are the studio speakers stored in the checkpoint's ``speakers_xtts.pth``
and the voice library's voices, whose conditioning latents are computed once
and cached beside them. Audio is yielded as ``inference_stream`` decodes it, so
time to first audio does not wait for the end of a sentence. torch and
coqui-tts are imported only when the engine loads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...common.file_cache import FileCache
from ...common.language import LanguageDetector, locale_style, match_language
from ...common.text import split_long
from ...errors import EngineUnavailableError, InvalidRequestError, VoiceNotFoundError
from ..base import (
    Attribution,
    Capabilities,
    Engine,
    EngineContext,
    SynthesisRequest,
    VoiceInfo,
)
from .options import SAMPLING_KEYS, XttsOptions, sampling_settings
from .weights import SPEAKERS_FILE, locate_checkpoint, read_config, read_speaker_names

if TYPE_CHECKING:
    from .conditioning import Conditioning, ConditioningCache
    from .model import LoadedModel

_LOGGER = logging.getLogger(__name__)

_ATTRIBUTION = Attribution("Coqui", "https://huggingface.co/coqui/XTTS-v2")
_LANGUAGES = (
    *("en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru"),
    *("nl", "cs", "ar", "zh-cn", "hu", "ko", "ja", "hi"),
)
"""XTTS-v2's languages, advertised until the checkpoint's config.json says otherwise."""

_SAMPLE_RATE = 24000
"""XTTS-v2's output rate, advertised until the checkpoint's config.json says otherwise."""

_CHAR_LIMIT = 250
"""XTTS's limit for English; every language has its own (71 for Japanese, 273 for French)."""

_MIN_REFERENCE_SECONDS = 1.0
"""Shorter recordings are refused (XTTS itself needs a third of a second; cloning
needs seconds to sound like anyone)."""

_MISSING: str | None = "it is missing"


class XttsEngine(Engine[XttsOptions]):
    """One XTTS-v2 model shared by all requests, with studio and cloned voices."""

    name = "xtts"
    capabilities = Capabilities(
        streams_within_sentence=True, cloning=True, max_sentence_chars=_CHAR_LIMIT
    )
    option_keys = frozenset(SAMPLING_KEYS)
    default_concurrency = 1

    def __init__(self, options: XttsOptions, context: EngineContext) -> None:
        super().__init__(options, context)
        configured = options.checkpoint_dir
        self._configured_dir = context.path(configured) if configured else None
        self._download_dir = context.cache_dir / "xtts-v2"
        self._converted_dir = context.cache_dir / "xtts-v2-converted"
        """Where an original-format model.pth is converted to (never in the weights folder)."""
        self._loaded: LoadedModel | None = None
        self._conditioning: ConditioningCache | None = None
        self._detector: LanguageDetector | None = None
        self._configs = FileCache(read_config)
        self._speakers = FileCache(read_speaker_names)
        self._problems = FileCache(_reference_problem)
        """Why a library voice's recording cannot be used, per recording."""

    # --- voices -----------------------------------------------------------

    @property
    def _folder(self) -> Path:
        return self._configured_dir or self._download_dir

    def _checkpoint_config(self) -> dict[str, Any]:
        return self._configs.get_or(self._folder / "config.json", {})

    def languages(self) -> list[str]:
        """XTTS language codes of the checkpoint (``en``, ``zh-cn``...)."""
        return list(self._checkpoint_config().get("languages") or _LANGUAGES)

    def _studio_names(self) -> list[str]:
        return self._speakers.get_or(self._folder / SPEAKERS_FILE, [])

    def prepare(self) -> None:
        self._checkpoint_config()
        self._studio_names()

    def voices(self) -> list[VoiceInfo]:
        config = self._checkpoint_config()
        rate = int(config.get("model_args", {}).get("output_sample_rate") or _SAMPLE_RATE)
        languages = [locale_style(code) for code in self.languages()]
        studio = self._studio_names()
        infos = [
            VoiceInfo(
                id=name,
                sample_rate=rate,
                languages=languages,
                description=f"XTTS-v2 studio speaker {name}",
                attribution=_ATTRIBUTION,
            )
            for name in studio
        ]
        for voice in self.context.reference_voices.for_engine(self.name):
            if voice.id in studio:
                continue  # a studio speaker keeps its name
            # Its own languages first (the first is its default), then all others XTTS speaks.
            others = [code for code in languages if not match_language(code, voice.languages)]
            problem = self._problems.get_or(voice.audio_path, _MISSING)
            infos.append(
                VoiceInfo(
                    id=voice.id,
                    sample_rate=rate,
                    languages=[*voice.languages, *others],
                    description=voice.description or f"Voice {voice.id} cloned with XTTS-v2",
                    attribution=_ATTRIBUTION,
                    installed=problem is None,
                    reason=f"reference audio {voice.audio_path}: {problem}" if problem else None,
                )
            )
        return infos

    # --- loading ----------------------------------------------------------

    def load(self) -> None:
        options = self.options
        folder = locate_checkpoint(
            self._configured_dir, self._download_dir, options.allow_download, options.revision
        )
        from .conditioning import ConditioningCache, compute_conditioning
        from .model import load_model

        loaded = load_model(folder, options, self.context.threads, self._converted_dir)
        self._conditioning = ConditioningCache(
            partial(compute_conditioning, loaded.model), loaded.key
        )
        if options.language_detection != "off" and self._detector is None:
            accurate = options.language_detection == "accurate"
            self._detector = LanguageDetector(self.languages(), accurate=accurate)
        self._loaded = loaded

    def unload(self) -> None:
        loaded, self._loaded, self._conditioning = self._loaded, None, None
        if loaded is not None:
            from .model import release_memory

            device = loaded.device
            del loaded
            release_memory(device)

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        loaded = self._loaded
        if loaded is None:
            raise EngineUnavailableError("the XTTS engine is not loaded")
        from .model import out_of_memory_as_error
        from .stream import stream_piece

        model = loaded.model
        checkpoint = {key: getattr(model.config, key) for key in SAMPLING_KEYS}
        settings = sampling_settings(self.options, request.options, checkpoint)
        with out_of_memory_as_error():
            conditioning, voice_language = self._voice(request.voice)
        language = self.choose_language(request.language, voice_language, request.text)
        if self.options.max_new_tokens is not None:
            settings["max_new_tokens"] = self.options.max_new_tokens
        limit = model.tokenizer.char_limits.get(language.split("-")[0], _CHAR_LIMIT)
        _LOGGER.debug("XTTS %s in %s: %r", request.voice, language, request.text[:80])
        for piece in split_long(request.text, limit):
            start = partial(
                model.inference_stream,
                piece,
                language,
                conditioning.gpt_cond_latent,
                conditioning.speaker_embedding,
                stream_chunk_size=self.options.stream_chunk_size,
                speed=request.speed or self.options.speed or 1.0,
                enable_text_splitting=False,
                **settings,
            )
            yield from stream_piece(loaded, start)

    def _voice(self, voice_id: str) -> tuple[Conditioning, str | None]:
        """The voice's conditioning latents and its default language (if it has one)."""
        from .conditioning import Conditioning

        assert self._loaded is not None and self._conditioning is not None
        manager = self._loaded.model.speaker_manager
        speakers = manager.speakers if manager is not None else {}
        if voice_id in speakers:
            latents = speakers[voice_id]
            return Conditioning(latents["gpt_cond_latent"], latents["speaker_embedding"]), None
        voice = self.context.reference_voices.find(self.name, voice_id)
        if voice is None:
            raise VoiceNotFoundError(f"XTTS has no voice '{voice_id}'")
        return self._conditioning.get(voice), voice.languages[0] if voice.languages else None

    def choose_language(self, requested: str | None, voice_default: str | None, text: str) -> str:
        """The request's language, else the voice's default, else the text's, else config's."""
        supported = self.languages()
        if requested:
            language = match_language(requested, supported)
            if language is None:
                raise InvalidRequestError(
                    f"XTTS does not speak '{requested}' (it speaks {', '.join(supported)})"
                )
            return language
        if voice_default and (language := match_language(voice_default, supported)):
            return language
        if self._detector is not None and (language := self._detector.detect(text)):
            return language
        return match_language(self.options.language, supported) or supported[0]


def _reference_problem(path: Path) -> str | None:
    """Why XTTS cannot condition on this recording, or None (reads only its header)."""
    import soundfile

    try:
        info = soundfile.info(path)
    except (OSError, RuntimeError) as err:  # soundfile raises LibsndfileError (a RuntimeError)
        return f"unreadable ({err})"
    if info.duration < _MIN_REFERENCE_SECONDS:
        return f"too short ({info.duration:.1f} s; XTTS needs at least {_MIN_REFERENCE_SECONDS} s)"
    return None

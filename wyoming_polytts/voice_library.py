"""The voice library: cloned voices stored once, usable by every cloning engine.

Layout, one folder per voice under the voices folder::

    voices/<name>/reference.wav     mono speech at the library's rate, silence trimmed
    voices/<name>/voice.yaml        display name, languages, transcript, engines, created
    voices/<name>/cache/<engine>/   engine caches (e.g. XTTS conditioning latents)

A person can create a voice by hand: a folder with an audio file and a
voice.yaml (``audio:`` names the file when it is not reference.wav). Every
change is atomic: a voice is written in a hidden temporary folder and renamed
into place, metadata is replaced with ``os.replace``, and a deleted voice is
renamed away before its files are removed. A broken voice.yaml makes that one
voice unavailable with its reason; it never stops the server.

Nothing is read or written outside the voices folder: a voice folder, voice.yaml,
recording or cache that is a link leading elsewhere makes that voice unavailable
(and unchangeable), and a full disk fails a change with
:class:`InsufficientStorageError` and leaves what was there as it was.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .engines.base import ReferenceVoice
from .errors import (
    ConfigError,
    InvalidRequestError,
    VoiceExistsError,
    VoiceNotFoundError,
)
from .library_files import disk_space, remove_path, replace_file, wav_bytes, within, write_file
from .reference_audio import AudioLimits, prepare_reference
from .schema import from_dict

_LOGGER = logging.getLogger(__name__)

META_FILE = "voice.yaml"
AUDIO_FILE = "reference.wav"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:_[A-Z][A-Za-z]{1,3})?$")


@dataclass
class VoiceMeta:
    """The contents of a voice's voice.yaml."""

    name: str | None = None
    """Display name; the folder name when absent."""

    languages: list[str] = field(default_factory=list)
    """Languages the voice speaks, ``en_US`` or ``en`` style."""

    default_language: str | None = None
    transcript: str | None = None
    """What the reference recording says (needed by some engines)."""

    description: str | None = None
    engines: list[str] = field(default_factory=list)
    """Engines that may use the voice; empty means every engine that clones."""

    created: str | None = None
    """ISO 8601 time of registration."""

    audio: str = AUDIO_FILE
    """The reference recording, relative to the voice's folder."""


@dataclass(frozen=True)
class LibraryVoice:
    """One folder of the library, usable or not."""

    id: str
    folder: Path
    meta: VoiceMeta
    error: str | None = None
    """Why the voice cannot be used (broken voice.yaml, missing audio)."""

    @property
    def audio_path(self) -> Path:
        return self.folder / self.meta.audio

    @property
    def languages(self) -> list[str]:
        """Languages with the default first."""
        default = self.meta.default_language
        rest = [lang for lang in self.meta.languages if lang != default]
        return [default, *rest] if default else rest

    def allows(self, engine: str) -> bool:
        return not self.meta.engines or engine in self.meta.engines

    def reference(self, engine: str) -> ReferenceVoice:
        return ReferenceVoice(
            id=self.id,
            audio_path=self.audio_path,
            transcript=self.meta.transcript,
            languages=self.languages,
            description=self.meta.description or f"Cloned voice {self.meta.name or self.id}",
            cache_dir=self.folder / "cache" / engine,
        )


def check_name(name: str) -> str:
    """A voice name is a safe folder name: letters, digits, ``-`` and ``_``."""
    if not _NAME.match(name):
        raise InvalidRequestError(
            f"invalid voice name {name[:80]!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_languages(languages: list[str]) -> list[str]:
    """Languages as ``en`` or ``en_US``; ``en-us`` is accepted and normalized."""
    normalized = []
    for language in languages:
        lang, _, region = language.replace("-", "_").partition("_")
        value = f"{lang.lower()}_{region.upper()}" if region else lang.lower()
        if not _LANGUAGE.match(value):
            raise InvalidRequestError(f"invalid language {language[:20]!r}: use e.g. en or en_US")
        normalized.append(value)
    return normalized


class VoiceLibrary:
    """Reads and changes the voices folder; implements ``ReferenceVoices`` for engines."""

    def __init__(self, root: Path, limits: AudioLimits) -> None:
        self.root = root
        self.limits = limits
        self._meta_cache: dict[Path, tuple[int, VoiceMeta]] = {}

    def cleanup(self) -> None:
        """Remove what an interrupted write or delete left behind (hidden folders)."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name.startswith((".tmp-", ".trash-")):
                remove_path(entry)

    # --- reading ----------------------------------------------------------

    def voices(self) -> list[LibraryVoice]:
        """Every voice folder, sorted by name; unusable ones carry their reason."""
        if not self.root.is_dir():
            return []
        folders = sorted(
            entry
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith(".") and _NAME.match(entry.name)
        )
        return [self._read(folder) for folder in folders]

    def get(self, name: str) -> LibraryVoice:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            raise VoiceNotFoundError(f"no voice '{name}' in the voice library")
        return self._read(folder)

    def for_engine(self, engine: str) -> list[ReferenceVoice]:
        return [
            voice.reference(engine)
            for voice in self.voices()
            if voice.error is None and voice.allows(engine)
        ]

    def _read(self, folder: Path) -> LibraryVoice:
        path = folder / META_FILE
        if (outside := self._outside(folder)) is not None:
            return LibraryVoice(folder.name, folder, VoiceMeta(), outside)
        try:
            meta = self._meta(path)
        except FileNotFoundError:
            return LibraryVoice(folder.name, folder, VoiceMeta(), f"{META_FILE} is missing")
        except (OSError, yaml.YAMLError, ConfigError) as err:
            _LOGGER.warning("Voice %s is unavailable: %s", folder.name, err)
            return LibraryVoice(folder.name, folder, VoiceMeta(), f"broken {META_FILE}: {err}")
        voice = LibraryVoice(folder.name, folder, meta)
        if not within(voice.audio_path, folder):
            return replace(voice, error=f"reference audio {meta.audio} links outside its folder")
        if not voice.audio_path.is_file():
            return replace(voice, error=f"reference audio {meta.audio} is missing")
        return voice

    def _outside(self, folder: Path) -> str | None:
        """Why ``folder`` (or its voice.yaml or cache) leads outside the library, if it does."""
        if not within(folder, self.root):
            return "the voice folder links outside the voices folder"
        for inside in (META_FILE, "cache"):
            if not within(folder / inside, folder):
                return f"{inside} links outside the voice folder"
        return None

    def _meta(self, path: Path) -> VoiceMeta:
        mtime = path.stat().st_mtime_ns
        cached = self._meta_cache.get(path)
        if cached is None or cached[0] != mtime:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            meta = from_dict(VoiceMeta, data, META_FILE)
            if Path(meta.audio).name != meta.audio or meta.audio in ("", ".", ".."):
                raise ConfigError(f"{META_FILE}.audio: expected a file name in the voice folder")
            cached = (mtime, meta)
            self._meta_cache[path] = cached
        return cached[1]

    # --- changing (blocking: call from a worker thread) -------------------

    def add(self, name: str, audio: bytes, meta: VoiceMeta) -> LibraryVoice:
        """Register a voice from an uploaded recording; exactly one of racing adds wins."""
        check_name(name)
        if (self.root / name).exists():
            raise VoiceExistsError(f"a voice named '{name}' already exists")
        samples = prepare_reference(audio, self.limits)
        meta = replace(
            meta,
            languages=check_languages(meta.languages),
            default_language=check_languages([meta.default_language])[0]
            if meta.default_language
            else None,
            created=meta.created or datetime.now(UTC).isoformat(timespec="seconds"),
            audio=AUDIO_FILE,
        )
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        with disk_space(f"register voice '{name}'"):
            self.root.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            try:
                write_file(staging / AUDIO_FILE, wav_bytes(samples, self.limits.rate))
                _write_meta(staging / META_FILE, meta)
                _publish(staging, self.root / name)
            except BaseException:
                remove_path(staging)
                raise
        return self.get(name)

    def update(self, name: str, changes: Mapping[str, Any]) -> LibraryVoice:
        """Change a voice's metadata (not its audio), replacing voice.yaml atomically."""
        voice = self.get(name)
        meta_missing = not (voice.folder / META_FILE).is_file()
        if voice.error is not None and (meta_missing or self._outside(voice.folder)):
            raise InvalidRequestError(f"voice '{name}' cannot be changed: {voice.error}")
        allowed = {"name", "languages", "default_language", "transcript", "description", "engines"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidRequestError(
                f"cannot change {unknown[0]!r}; changeable: {', '.join(sorted(allowed))}"
            )
        try:
            meta = from_dict(VoiceMeta, {**asdict(voice.meta), **changes}, "voice")
        except ConfigError as err:
            raise InvalidRequestError(str(err)) from err
        meta = replace(meta, languages=check_languages(meta.languages))
        if meta.default_language:
            meta.default_language = check_languages([meta.default_language])[0]
        with disk_space(f"change voice '{name}'"):
            _write_meta(voice.folder / META_FILE, meta)
        return self.get(name)

    def remove(self, name: str) -> None:
        """Delete a voice: renamed away first, so it vanishes at once and whole."""
        voice = self.get(name)
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        os.rename(voice.folder, trash)  # a link is renamed itself, never what it leads to
        remove_path(trash)


def _write_meta(path: Path, meta: VoiceMeta) -> None:
    data = {key: value for key, value in asdict(meta).items() if value not in (None, [])}
    replace_file(path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode())


def _publish(staging: Path, target: Path) -> None:
    """Rename the finished folder into place; fails if another add got there first."""
    try:
        os.rename(staging, target)
    except OSError as err:
        if target.exists():
            raise VoiceExistsError(f"a voice named '{target.name}' already exists") from err
        raise

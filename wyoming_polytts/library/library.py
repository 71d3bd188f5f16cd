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
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..common.echo import clip
from ..common.file_cache import FileCache
from ..common.reference_voice import ReferenceVoice
from ..errors import (
    ConfigError,
    InvalidRequestError,
    VoiceExistsError,
    VoiceNotFoundError,
)
from .files import (
    disk_space,
    remove_partial_files,
    remove_path,
    replace_file,
    wav_bytes,
    within,
    write_file,
)
from .meta import (
    AUDIO_FILE,
    META_FILE,
    NAME,
    VoiceMeta,
    check_name,
    created_now,
    dump_meta,
    normalized,
    parse_meta,
    read_meta,
    salvage_meta,
)
from .reference_audio import AudioLimits, prepare_reference

_LOGGER = logging.getLogger(__name__)

_HIDDEN = (".tmp-", ".trash-", ".claim-")
"""Prefixes of what an add or a delete keeps in the voices folder while it runs."""


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


class VoiceLibrary:
    """Reads and changes the voices folder; implements ``ReferenceVoices`` for engines."""

    def __init__(self, root: Path, limits: AudioLimits) -> None:
        self.root = root
        self.limits = limits
        self._metas = FileCache(read_meta)
        """voice.yaml files as read, kept until they change."""

    def cleanup(self) -> None:
        """Remove what an interrupted add, delete or metadata change left behind: hidden
        folders in the voices folder, half-written files in the voice folders."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name.startswith(_HIDDEN):
                remove_path(entry)
            elif entry.is_dir() and not entry.is_symlink():
                remove_partial_files(entry)

    # --- reading ----------------------------------------------------------

    def voices(self) -> list[LibraryVoice]:
        """Every voice folder, sorted by name; unusable ones carry their reason."""
        if not self.root.is_dir():
            return []
        folders = sorted(
            entry for entry in self.root.iterdir() if entry.is_dir() and NAME.fullmatch(entry.name)
        )
        return [self._read(folder) for folder in folders]

    def get(self, name: str) -> LibraryVoice:
        folder = self.root / check_name(name)
        voice = self._read(folder) if folder.is_dir() else None
        # A voice read broken because it was deleted meanwhile is simply not there.
        if voice is None or (voice.error is not None and not folder.is_dir()):
            raise VoiceNotFoundError(f"no voice '{name}' in the voice library")
        return voice

    def for_engine(self, engine: str) -> list[ReferenceVoice]:
        return [
            voice.reference(engine)
            for voice in self.voices()
            if voice.error is None and voice.allows(engine)
        ]

    def find(self, engine: str, voice_id: str) -> ReferenceVoice | None:
        folder = self.root / voice_id
        if not NAME.fullmatch(voice_id) or not folder.is_dir():
            return None
        voice = self._read(folder)
        return voice.reference(engine) if voice.error is None and voice.allows(engine) else None

    def _read(self, folder: Path) -> LibraryVoice:
        path = folder / META_FILE
        if (outside := self._outside(folder)) is not None:
            return LibraryVoice(folder.name, folder, VoiceMeta(), outside)
        try:
            meta = self._metas.get(path)
        except FileNotFoundError:
            return LibraryVoice(folder.name, folder, VoiceMeta(), f"{META_FILE} is missing")
        except (OSError, ValueError, yaml.YAMLError, ConfigError) as err:
            _LOGGER.warning("Voice %s is unavailable: %s", folder.name, err)
            reason = err.strerror if isinstance(err, OSError) else err  # no server paths
            return LibraryVoice(folder.name, folder, VoiceMeta(), f"broken {META_FILE}: {reason}")
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

    def _stored_meta(self, folder: Path) -> VoiceMeta:
        """The voice's metadata, or what can be salvaged when its voice.yaml is broken."""
        try:
            return self._metas.get(folder / META_FILE)
        except (OSError, ValueError, yaml.YAMLError, ConfigError):
            return salvage_meta(folder)

    # --- changing (blocking: call from a worker thread) -------------------

    def add(self, name: str, audio: bytes, meta: VoiceMeta) -> LibraryVoice:
        """Register a voice from an uploaded recording; exactly one of racing adds wins,
        also when their names differ only in letter case."""
        check_name(name)
        self._refuse_taken(name)
        samples = prepare_reference(audio, self.limits)
        meta = replace(normalized(meta), created=meta.created or created_now(), audio=AUDIO_FILE)
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        with disk_space(f"register voice '{name}'"):
            self.root.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            try:
                write_file(staging / AUDIO_FILE, wav_bytes(samples, self.limits.rate))
                replace_file(staging / META_FILE, dump_meta(meta))
                with self._claim(name):
                    self._refuse_taken(name)
                    _publish(staging, self.root / name)
            except BaseException:
                remove_path(staging)
                raise
        return self.get(name)

    def update(self, name: str, changes: Mapping[str, Any]) -> LibraryVoice:
        """Change a voice's metadata (not its audio), replacing voice.yaml atomically.

        A broken voice.yaml is repaired: what is valid in it is kept (see
        :func:`salvage_meta`), the changes are applied, and the file is written whole.
        """
        voice = self.get(name)
        meta_missing = not (voice.folder / META_FILE).is_file()
        if voice.error is not None and (meta_missing or self._outside(voice.folder)):
            raise InvalidRequestError(f"voice '{name}' cannot be changed: {voice.error}")
        allowed = {"name", "languages", "default_language", "transcript", "description", "engines"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidRequestError(
                f"cannot change {clip(unknown[0])!r}; changeable: {', '.join(sorted(allowed))}"
            )
        meta = parse_meta({**asdict(self._stored_meta(voice.folder)), **changes})
        with disk_space(f"change voice '{name}'"), _vanishing(name):
            replace_file(voice.folder / META_FILE, dump_meta(meta))
        return self.get(name)

    def remove(self, name: str) -> None:
        """Delete a voice: renamed away first, so it vanishes at once and whole."""
        voice = self.get(name)
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        with _vanishing(name):
            os.rename(voice.folder, trash)  # a link is renamed itself, never what it leads to
        remove_path(trash)

    def _refuse_taken(self, name: str) -> None:
        """Names are unique in any letter case, as on a case-insensitive file system."""
        folded = name.lower()
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name.lower() == folded:
                same = "" if entry.name == name else f" ('{name}' differs only in case)"
                raise VoiceExistsError(f"a voice named '{entry.name}' already exists{same}")

    @contextmanager
    def _claim(self, name: str) -> Iterator[None]:
        """Hold the name in every letter case while a new voice is renamed into place.

        The claim is a folder (creating one is atomic, also between processes), so of
        two adds racing for ``Joe`` and ``joe`` one sees the other's claim or voice.
        """
        claim = self.root / f".claim-{name.lower()}"
        try:
            claim.mkdir()
        except FileExistsError as err:
            raise VoiceExistsError(f"a voice named '{name}' is being registered") from err
        try:
            yield
        finally:
            claim.rmdir()


@contextmanager
def _vanishing(name: str) -> Iterator[None]:
    """A voice deleted meanwhile (its folder renamed away) is not found, whatever the path."""
    try:
        yield
    except FileNotFoundError as err:
        raise VoiceNotFoundError(
            f"no voice '{name}' in the voice library (deleted meanwhile)"
        ) from err


def _publish(staging: Path, target: Path) -> None:
    """Rename the finished folder into place; fails if another add got there first."""
    try:
        os.rename(staging, target)
    except OSError as err:
        if target.exists():
            raise VoiceExistsError(f"a voice named '{target.name}' already exists") from err
        raise

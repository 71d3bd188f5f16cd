"""Cloned voices as cloning engines see them, and where engines find them.

The voice library provides them; cloning engines read them. Neither side imports
the other: both meet at this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import SynthesisError
from .file_cache import FileKey, file_key


@dataclass(frozen=True)
class ReferenceVoice:
    """A voice of the voice library, as an engine that clones sees it."""

    id: str
    """Library name, unique among library voices."""

    audio_path: Path
    """Reference recording: mono WAV, silence trimmed."""

    transcript: str | None
    """What the recording says, when known (some engines need it)."""

    languages: list[str]
    """Languages in ``en_US`` style; the first is the default."""

    description: str
    cache_dir: Path
    """Folder where an engine may keep caches for this voice (e.g. conditioning latents)."""


def recording_key(voice: ReferenceVoice) -> tuple[Path, FileKey]:
    """Which recording the voice has now, for caches of what is made from it; raises
    :class:`SynthesisError` when the recording is missing."""
    path = voice.audio_path
    try:
        return path, file_key(path)
    except OSError as err:
        raise SynthesisError(f"reference audio {path} is missing: {err.strerror}") from err


class ReferenceVoices(Protocol):
    """Where cloning engines find the voice library's voices."""

    def for_engine(self, engine: str) -> list[ReferenceVoice]:
        """Library voices that ``engine`` may use, read fresh on every call (for the
        engine's voice list)."""
        ...

    def find(self, engine: str, voice_id: str) -> ReferenceVoice | None:
        """The library voice ``voice_id`` if ``engine`` may use it, read fresh from its
        own folder alone (for a request)."""
        ...


class NoReferenceVoices:
    """An empty voice library."""

    def for_engine(self, engine: str) -> list[ReferenceVoice]:
        return []

    def find(self, engine: str, voice_id: str) -> ReferenceVoice | None:
        return None

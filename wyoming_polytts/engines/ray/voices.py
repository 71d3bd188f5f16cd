"""Library voices on the cluster's nodes: sent by content, kept by the hash of their recording.

The server never hands a replica a path on its own disk. It puts each recording once
into Ray's object store (:class:`Uploads`) and sends a :class:`VoiceContent`: the
recording's SHA-256, a reference to its bytes, and the transcript and languages. A
node keeps each recording under its hash (:class:`NodeVoices`); a replica or a
voice listing fetches the bytes only for a hash its node does not have yet. The
engine's own class finds them there as it finds library voices at home, through the
:class:`ReferenceVoices` of its context.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ...common.file_cache import FileCache
from ...common.reference_voice import ReferenceVoice, ReferenceVoices
from ...errors import SynthesisError

_RECORDING = "reference.wav"


@dataclass(frozen=True)
class Upload:
    """One recording in the object store."""

    digest: str
    """SHA-256 of the recording's bytes, hex."""

    audio: Any
    """Ray ``ObjectRef`` of the bytes; the server holds it while the file is unchanged."""


@dataclass(frozen=True)
class VoiceContent:
    """A library voice as it travels to the cluster."""

    id: str
    digest: str
    """SHA-256 of the recording: the name it is kept under on a node."""

    audio: Any
    """Ray ``ObjectRef`` of the recording's bytes, fetched only by a node without them."""

    transcript: str | None
    languages: list[str]
    description: str


class Uploads:
    """The server's side: every recording put into the object store once per version."""

    def __init__(self) -> None:
        self._files = FileCache(_upload)

    def content(self, voice: ReferenceVoice) -> VoiceContent:
        """``voice`` by content; :class:`SynthesisError` when its recording is missing."""
        try:
            upload = self._files.get(voice.audio_path)
        except OSError as err:
            raise SynthesisError(
                f"reference audio of voice '{voice.id}' is missing: {err.strerror}"
            ) from err
        return VoiceContent(
            voice.id,
            upload.digest,
            upload.audio,
            voice.transcript,
            list(voice.languages),
            voice.description,
        )


def _upload(path: Path) -> Upload:
    data = path.read_bytes()
    return Upload(hashlib.sha256(data).hexdigest(), ray.put(data))


class NodeVoices(ReferenceVoices):
    """A node's side: recordings kept by hash in ``folder``; the voices a replica's engine
    (or a voice listing) is told about, as its context's reference voices."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._voices: dict[str, ReferenceVoice] = {}
        self.listing: list[ReferenceVoice] = []
        """The library voices the engine lists (those of the last listing)."""

    def missing(self, content: VoiceContent) -> bool:
        """Whether this node lacks the recording (its bytes must be fetched)."""
        return not self._recording(content).is_file()

    def add(self, content: VoiceContent, data: bytes | None = None) -> ReferenceVoice:
        """Make ``content`` known to the engine, writing ``data`` (its recording, fetched
        because it was :meth:`missing`) first."""
        path = self._recording(content)
        if data is not None:
            _write_atomically(path, data)
        voice = ReferenceVoice(
            id=content.id,
            audio_path=path,
            transcript=content.transcript,
            languages=list(content.languages),
            description=content.description,
            cache_dir=path.parent / "cache",
        )
        self._voices[content.id] = voice
        return voice

    async def receive(self, content: VoiceContent) -> ReferenceVoice:
        """:meth:`add`, fetching the recording when this node has not got it yet (in a
        replica's event loop)."""
        return self.add(content, await content.audio if self.missing(content) else None)

    def fetch(self, content: VoiceContent) -> ReferenceVoice:
        """:meth:`receive`, blocking (in a task outside any event loop)."""
        return self.add(content, ray.get(content.audio) if self.missing(content) else None)

    def _recording(self, content: VoiceContent) -> Path:
        return self.folder / content.digest / _RECORDING

    def for_engine(self, engine: str) -> list[ReferenceVoice]:
        return list(self.listing)

    def find(self, engine: str, voice_id: str) -> ReferenceVoice | None:
        return self._voices.get(voice_id)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so that another replica of the
    node never reads half a recording."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

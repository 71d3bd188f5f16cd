"""XTTS conditioning latents of library voices, computed once and cached on disk.

XTTS speaks with a voice through two tensors computed from its reference
recording: the GPT conditioning latent and the speaker embedding. Computing
them takes a noticeable share of a request, so each voice's pair is kept in
memory and in ``xtts-conditioning.pt`` inside the voice's cache folder, tagged
with the SHA-256 of the recording and the model it was computed with. A changed
recording (or model) is noticed by file size and modification time, checked
against the hash, and recomputed once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile
import torch

from ...common.file_cache import FileKey
from ...common.reference_voice import ReferenceVoice, recording_key
from ...errors import SynthesisError

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts

_LOGGER = logging.getLogger(__name__)

CACHE_FILE = "xtts-conditioning.pt"


@dataclass(frozen=True)
class Conditioning:
    """The two tensors XTTS conditions a voice on."""

    gpt_cond_latent: torch.Tensor
    """Shape (1, 32, GPT channels)."""

    speaker_embedding: torch.Tensor
    """Shape (1, 512, 1)."""


@dataclass(frozen=True)
class _Entry:
    signature: tuple[Path, FileKey]
    """The recording the latents came from (see :func:`recording_key`)."""

    conditioning: Conditioning


def compute_conditioning(model: Xtts, audio_path: Path) -> Conditioning:
    """Conditioning latents of a recording, decoded with soundfile (not torchaudio)."""
    try:
        samples, rate = soundfile.read(audio_path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as err:  # soundfile raises LibsndfileError (a RuntimeError)
        raise SynthesisError(f"cannot read reference audio {audio_path.name}: {err}") from err
    config = model.config
    # A float WAV may hold samples beyond full scale; XTTS expects [-1, 1].
    mono = np.clip(samples.mean(axis=1)[: rate * int(config.max_ref_len)], -1.0, 1.0)
    if not mono.size or not np.any(mono):
        raise SynthesisError(f"reference audio {audio_path.name} is empty or silent")
    audio = torch.from_numpy(np.ascontiguousarray(mono))[None].to(model.device)
    try:
        latent = model.get_gpt_cond_latents(
            audio, rate, length=config.gpt_cond_len, chunk_length=config.gpt_cond_chunk_len
        )
    except RuntimeError as err:  # XTTS refuses recordings shorter than a third of a second
        raise SynthesisError(f"reference audio {audio_path.name}: {err}") from err
    embedding = model.get_speaker_embedding(audio, rate)
    return Conditioning(latent, embedding)


class ConditioningCache:
    """Latents of library voices: computed once per recording, reused from memory or disk."""

    def __init__(self, compute: Callable[[Path], Conditioning], model_key: str) -> None:
        """``compute`` turns a recording into latents; ``model_key`` names the weights."""
        self._compute = compute
        self._model_key = model_key
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.computed = 0
        """How many times latents were computed (not read from a cache)."""

    def get(self, voice: ReferenceVoice) -> Conditioning:
        """The voice's latents; computed only if its recording is new or has changed."""
        with self._guard:
            lock = self._locks.setdefault(voice.id, threading.Lock())
        with lock:  # one computation per voice, even with concurrent requests
            signature = recording_key(voice)
            entry = self._entries.get(voice.id)
            if entry is not None and entry.signature == signature:
                return entry.conditioning
            digest = _sha256(voice.audio_path)
            cache_file = voice.cache_dir / CACHE_FILE
            conditioning = self._read(cache_file, digest)
            if conditioning is None:
                _LOGGER.info("Computing XTTS conditioning for voice %s", voice.id)
                conditioning = self._compute(voice.audio_path)
                self.computed += 1
                self._write(cache_file, digest, conditioning)
            self._entries[voice.id] = _Entry(signature, conditioning)
            return conditioning

    def _read(self, path: Path, digest: str) -> Conditioning | None:
        try:
            data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        except Exception as err:  # a truncated or foreign file is recomputed, not fatal
            _LOGGER.warning("Ignoring unreadable XTTS conditioning cache %s: %s", path, err)
            return None
        if data.get("audio_sha256") != digest or data.get("model") != self._model_key:
            return None
        return Conditioning(data["gpt_cond_latent"], data["speaker_embedding"])

    def _write(self, path: Path, digest: str, conditioning: Conditioning) -> None:
        data = {
            "audio_sha256": digest,
            "model": self._model_key,
            "gpt_cond_latent": conditioning.gpt_cond_latent.detach().cpu(),
            "speaker_embedding": conditioning.speaker_embedding.detach().cpu(),
        }
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(data, partial)
            partial.replace(path)
        except OSError as err:  # a read-only library still works, just without the disk cache
            _LOGGER.warning("Cannot write XTTS conditioning cache %s: %s", path, err)
            partial.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

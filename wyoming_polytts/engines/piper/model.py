"""A Piper voice's ONNX model, run so that a sentence's audio comes out in pieces.

Piper's VITS graph turns phoneme ids into a latent spectrogram (text encoder,
duration predictor, flow), then its HiFi-GAN decoder turns that into audio; the
decoder is most of the work. Split at the decoder's input, the encoder runs once
per sentence and the decoder runs on windows of latent frames, each widened by a
few frames of context on both sides and trimmed back: the joined pieces match
the whole-sentence audio (to about 1e-6 with 16 frames of context, 5e-4 with 8),
while the first piece is ready after a fraction of the sentence's time. Every
sentence is decoded in windows, the later ones too (joined before they leave):
the decoder's working memory then depends on the window, not on the longest
sentence ever spoken, which kept ONNX Runtime's arenas growing.

The decoder has two sessions: one on every thread for a call running alone, and
one with a share of the threads for calls running side by side (an ONNX Runtime
session's thread count is fixed when it is made). The encoder, which holds most of
the weights (about 80 of a voice's 100 MiB) but little of the work, has one, on
every thread, that calls side by side share. A graph that cannot be split has two.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .split import SplitModel

if TYPE_CHECKING:
    import onnxruntime

FIRST_FRAMES = 64
"""Latent frames in a sentence's first piece when other calls are computing (about
0.74 s of audio at 22050 Hz): long enough that, with eight requests starting at once
on two cores, a listener's first piece (nearly) lasts until its next one arrives
(bench: gaps of at most 32 ms; 48 frames left gaps of 0.1 to 0.2 s)."""

FIRST_FRAMES_ALONE = 32
"""Latent frames in a sentence's first piece when nothing else is computing: the
next window then has the engine to itself and is ready long before the first piece
has played, so the first audio can leave sooner."""

PIECE_FRAMES = 160
"""Latent frames in each later piece (about 1.9 s); a shorter rest joins the last piece.
The decoder's working memory follows the window, once per call in flight, and ONNX
Runtime's arenas keep it: at 256 frames a two-worker server peaked about 130 MiB
higher (in process: 440 against 316 MiB at 160 and 128 frames, 377 at 192) at the
same speed; at 96 the context's share (16 of 112 frames) began to cost time."""

CONTEXT_FRAMES = 8
"""Frames decoded on each side of a window and trimmed off (the decoder's reach)."""

PEAK_FLOOR = 0.6
"""Lowest first-piece peak a sentence's gain is computed from (see :func:`gain_for`)."""


class Occupancy:
    """Counts model calls computing right now, from any worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    @property
    def busy(self) -> bool:
        """Some call is computing right now."""
        with self._lock:
            return self._count > 0

    @contextmanager
    def enter(self) -> Iterator[bool]:
        """Count one call in; yields whether it is the only one."""
        with self._lock:
            self._count += 1
            alone = self._count == 1
        try:
            yield alone
        finally:
            with self._lock:
                self._count -= 1


@dataclass(frozen=True)
class SessionPair:
    """One graph loaded for a call alone (every thread) and for calls side by side."""

    alone: onnxruntime.InferenceSession
    together: onnxruntime.InferenceSession

    def run(self, occupancy: Occupancy, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's first output, on the session that fits how busy the engine is."""
        with occupancy.enter() as alone:
            session = self.alone if alone else self.together
            inputs = {i.name for i in session.get_inputs()}
            fed = {name: value for name, value in feeds.items() if name in inputs}
            output: np.ndarray = session.run(None, fed)[0]
        return output


class SessionMaker:
    """Makes ONNX Runtime sessions with the engine's thread and provider settings."""

    def __init__(self, threads: int, shared_threads: int, spin: bool, cuda: bool) -> None:
        self.threads = threads
        self.shared_threads = shared_threads
        self.spin = spin
        self.providers = [*(["CUDAExecutionProvider"] if cuda else []), "CPUExecutionProvider"]

    def pair(self, model: str) -> SessionPair:
        alone = self._session(model, self.threads)
        if self.shared_threads == self.threads:
            return SessionPair(alone, alone)
        return SessionPair(alone, self._session(model, self.shared_threads))

    def shared(self, model: str) -> SessionPair:
        """One session on every thread, for calls alone and side by side alike."""
        session = self._session(model, self.threads)
        return SessionPair(session, session)

    def _session(self, model: str, threads: int) -> onnxruntime.InferenceSession:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        # Memory patterns are planned and kept per input shape; sentences and windows
        # come in every length, so they only piled up (+200 MiB over 600 sentences).
        options.enable_mem_pattern = False
        if not self.spin:
            # Without spinning, calls side by side share the cores instead of fighting.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(model, sess_options=options, providers=self.providers)


class PiperModel:
    """A voice's graph, whole or split at the decoder (see :mod:`.piper_split`)."""

    def __init__(self, path: Path, sessions: SessionMaker, split: SplitModel | None) -> None:
        self.occupancy = Occupancy()
        self._whole: SessionPair | None = None
        self._halves: tuple[SessionPair, SessionPair, str] | None = None
        if split is None:
            self._whole = sessions.pair(str(path))
        else:
            encoder, decoder = (
                sessions.shared(str(split.encoder)),
                sessions.pair(str(split.decoder)),
            )
            self._halves = (encoder, decoder, split.latent)

    @property
    def streams(self) -> bool:
        """Whether the graph is split, so a sentence can come out in pieces."""
        return self._halves is not None

    def pieces(self, feeds: dict[str, np.ndarray], early: bool) -> Iterator[np.ndarray]:
        """Float audio of one sentence: in pieces with one gain for the sentence, chosen
        from its first piece, when ``early`` and the graph is split; else whole and
        peak-normalised, as Piper makes it (decoded in windows all the same: their
        context costs a few per cent of the decoder's time)."""
        if self._halves is None:
            assert self._whole is not None
            yield _normalised(self._whole.run(self.occupancy, feeds).reshape(-1))
            return
        latent = self.encode(feeds)
        frames = latent.shape[2]
        if not early:
            spans = windows(frames, PIECE_FRAMES)
            yield _normalised(np.concatenate([self.decode(latent, feeds, w) for w in spans]))
            return
        first = FIRST_FRAMES if self.occupancy.busy else FIRST_FRAMES_ALONE
        gain: float | None = None
        for window in windows(frames, first):
            audio = self.decode(latent, feeds, window)
            if gain is None:
                gain = gain_for(audio)
            yield audio * gain

    def encode(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The sentence's latent frames (split graphs only)."""
        assert self._halves is not None
        return self._halves[0].run(self.occupancy, feeds)

    def decode(
        self, latent: np.ndarray, feeds: dict[str, np.ndarray], window: tuple[int, int]
    ) -> np.ndarray:
        """Raw audio of ``window`` (start and end frame), decoded with
        :data:`CONTEXT_FRAMES` of context on each side (split graphs only)."""
        assert self._halves is not None
        _, decoder, name = self._halves
        start, end = window
        low, high = max(0, start - CONTEXT_FRAMES), min(latent.shape[2], end + CONTEXT_FRAMES)
        audio = decoder.run(self.occupancy, {**feeds, name: latent[:, :, low:high]}).reshape(-1)
        per_frame = audio.size // (high - low)
        return audio[(start - low) * per_frame : (end - low) * per_frame]


def _normalised(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak if peak > 1e-8 else audio


def windows(frames: int, first: int = FIRST_FRAMES) -> Iterator[tuple[int, int]]:
    """The latent frame ranges decoded one after another: ``first`` frames, then
    :data:`PIECE_FRAMES` each, a short remainder joined to the one before."""
    start, size = 0, first
    while start < frames:
        end = start + size
        if frames - end < size // 2:
            end = frames
        yield start, end
        start, size = end, PIECE_FRAMES


def gain_for(first_piece: np.ndarray) -> float:
    """Gain for a whole sentence from its first piece.

    Piper scales every sentence to full scale, which needs the whole sentence. Its
    models' raw peaks lie around 0.4 to 0.7 and the first piece usually holds the
    sentence's peak or comes close, so the first piece's peak, but no lower than
    :data:`PEAK_FLOOR`, keeps the level near Piper's without clipping the rest.
    """
    peak = float(np.max(np.abs(first_piece))) if first_piece.size else 0.0
    return 1.0 / max(peak, PEAK_FLOOR)

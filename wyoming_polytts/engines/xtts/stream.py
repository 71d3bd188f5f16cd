"""Streaming one text piece through XTTS, with the float16 fallback.

Under float16 autocast XTTS's GPT can produce NaN/inf logits, and sampling then
fails with torch's "probability tensor contains either inf, nan or element < 0"
(coqui-ai/TTS#4375). A piece that fails so before any of its audio left is tried
again in float32; when float32 speaks it, float16 is turned off for good. When
float32 fails too, the request's own sampling settings are to blame, and float16
stays on. Imported only when the engine loads (it imports torch).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ...common.audio import to_int16
from ...errors import SynthesisError
from .model import LoadedModel, out_of_memory_as_error

_LOGGER = logging.getLogger(__name__)

_BAD_PROBABILITIES = "probability tensor contains either"


def stream_piece(loaded: LoadedModel, start: Callable[[], Iterator[Any]]) -> Iterator[np.ndarray]:
    """int16 audio of one piece; ``start`` begins ``inference_stream`` for it."""
    yielded = False
    try:
        for chunk in _run(start(), loaded.precision):
            yielded = True
            yield chunk
        return
    except RuntimeError as err:
        if _BAD_PROBABILITIES not in str(err):
            raise
        if not loaded.half:
            raise _sampling_error(err) from err
        if yielded:
            loaded.half = False
            _LOGGER.warning("XTTS: float16 sampling failed mid-piece (%s); float32 from now", err)
            raise SynthesisError(f"XTTS sampling failed under float16: {err}") from err
        _LOGGER.warning("XTTS: float16 sampling failed (%s); trying the piece in float32", err)
    try:
        for chunk in _run(start(), contextlib.nullcontext):
            if loaded.half:
                loaded.half = False
                _LOGGER.warning("XTTS: float32 works where float16 failed; float32 from now on")
            yield chunk
    except RuntimeError as err:
        if _BAD_PROBABILITIES not in str(err):
            raise
        raise _sampling_error(err) from err


def _sampling_error(err: RuntimeError) -> SynthesisError:
    return SynthesisError(
        f"XTTS sampling failed ({err}): check the request's temperature, top_k and top_p"
    )


def _run(
    stream: Iterator[Any], precision: Callable[[], AbstractContextManager[object]]
) -> Iterator[np.ndarray]:
    while True:
        # Autocast per step: a context held across ``yield`` would leak into the
        # pool's worker thread between pieces.
        with out_of_memory_as_error(), precision():
            chunk = next(stream, None)
        if chunk is None:
            return
        yield to_int16(chunk.float().cpu().numpy())

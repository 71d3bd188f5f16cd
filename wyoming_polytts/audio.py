"""PCM helpers shared by engines and front doors."""

from __future__ import annotations

import numpy as np


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Mono int16 PCM from float samples in [-1, 1] (clipped) or from int16 as is."""
    if samples.dtype == np.int16:
        return samples.reshape(-1)
    scaled = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0) * 32767.0
    return scaled.astype(np.int16)

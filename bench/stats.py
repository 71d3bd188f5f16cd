"""Medians, percentiles and ratios that tolerate missing values."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def median(values: Iterable[float | None]) -> float | None:
    clean = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(clean) if clean else None


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolated; inf counts (a failed probe)."""
    clean = sorted(v for v in values if v is not None)
    if not clean:
        return None
    if len(clean) == 1:
        return clean[0]
    position = (len(clean) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(clean) - 1)
    if clean[high] == clean[low]:  # also keeps inf - inf out
        return clean[low]
    return clean[low] + (clean[high] - clean[low]) * (position - low)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs

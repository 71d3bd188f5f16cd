"""How far ahead of its listener a request's audio is: the scheduler's measure of urgency.

A listener starts playing at the request's first piece and then plays in real time.
The audio handed over so far, minus the time since that first piece, is what the
listener still has ahead of it (its *slack*); when the slack runs out, playback
stalls. Times are ``time.monotonic()``, so worker threads can read them too.
"""

from __future__ import annotations

import math


class Playback:
    """The audio one request has handed over, against a listener that started at its
    first piece."""

    def __init__(self) -> None:
        self.started: float | None = None
        """When the first piece was handed over (monotonic clock); None before it."""

        self.produced = 0.0
        """Seconds of audio handed over."""

    def add(self, seconds: float, now: float) -> None:
        """Count a piece of ``seconds`` of audio handed over at ``now``."""
        if self.started is None:
            self.started = now
        self.produced += seconds

    def slack(self, now: float) -> float:
        """Seconds of audio the listener has left at ``now``; infinite before it starts."""
        if self.started is None:
            return math.inf
        return self.started + self.produced - now

    def runs_dry(self, margin: float) -> float:
        """When the slack falls to ``margin`` (monotonic clock); infinite before it starts."""
        if self.started is None:
            return math.inf
        return self.started + self.produced - margin

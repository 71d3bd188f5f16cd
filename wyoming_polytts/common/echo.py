"""Client text echoed back in error messages and log lines, cut to a bounded length.

A client may send a voice name, a model or a URL of up to a megabyte; echoing it
whole would put that megabyte in the ``error`` event and in one log line. Every
message that repeats client text passes it through :func:`clip`.
"""

from __future__ import annotations

ECHO_CHARS = 100
"""Longest piece of client text repeated in a message."""


def clip(text: object, limit: int = ECHO_CHARS) -> str:
    """``text`` as it is when short; else its first ``limit`` characters and its length."""
    value = str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value)} characters)"

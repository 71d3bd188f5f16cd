"""Number and table formatting for the markdown report."""

from __future__ import annotations

from collections.abc import Iterable

DASH = "—"


def ms(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds * 1000:.0f}"


def times(value: float | None) -> str:
    """A ratio or factor, two decimals."""
    return DASH if value is None else f"{value:.2f}"


def percent(fraction: float | None) -> str:
    return DASH if fraction is None else f"{fraction * 100:+.0f} %"


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """Markdown table lines, followed by a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]

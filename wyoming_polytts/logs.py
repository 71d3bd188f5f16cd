"""Logging set-up: one line per record, with configured secrets (API keys) masked.

API keys are never logged on purpose (the ``Authorization`` header is not in the
access log), and the formatter masks them in whatever else would carry one by
mistake: a key a client put in a URL, in a voice name or in text, an exception
message, a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"


class RedactingFormatter(logging.Formatter):
    """Formats a record as usual, then masks every secret in the result."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Log to stderr at ``level``, masking ``secrets`` in every line."""
    logging.basicConfig(level=level, format=FORMAT)
    formatter = RedactingFormatter(FORMAT, secrets)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)

"""JSON from clients, decoded with a bound on nesting.

Python's decoder recurses once per nesting level, so a body of a few kilobytes
of ``[[[[...`` would exhaust the stack. Nesting is counted on the raw text
first (strings removed in one linear pass, then a running count of brackets),
and anything deeper than :data:`MAX_DEPTH` is refused before the decoder sees it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import numpy as np

from ..errors import InvalidRequestError

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; no request here needs more than 3."""

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\Z)', re.DOTALL)
"""A whole JSON string, running to the end when unterminated, so no position is
scanned twice; the brackets inside it do not count."""

_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


def decode_json(data: bytes, what: str = "the request body", max_depth: int = MAX_DEPTH) -> Any:
    """The value ``data`` holds; :class:`InvalidRequestError` when it is not UTF-8 JSON,
    nests deeper than ``max_depth`` or holds an integer too long to convert."""
    if too_deep(data, max_depth):
        raise InvalidRequestError(f"{what} nests JSON deeper than {max_depth} levels")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidRequestError(f"{what} is not valid JSON: {err}") from err
    except ValueError as err:  # an integer past Python's int-string limit
        raise InvalidRequestError(
            f"{what} holds a number longer than {sys.get_int_max_str_digits()} digits"
        ) from err


def too_deep(data: bytes, max_depth: int) -> bool:
    """Whether arrays and objects in JSON text nest deeper than ``max_depth``."""
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    codes = np.frombuffer(_STRINGS.sub(b"", data), dtype=np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int32) - np.isin(codes, _CLOSE)
    return bool(steps.size) and int(np.cumsum(steps).max()) > max_depth

"""What an OpenAI-compatible speech server says about itself: its voices, its errors.

OpenAI's API has no voice list; the servers that have one answer
``GET /audio/voices`` in a few shapes: Kokoro-FastAPI ``{"voices": ["af_bella",
...]}`` (or ``{"id", "name"}`` objects), vLLM-Omni the same plus
``"uploaded_voices": [{"name", "speaker_description", ...}]``, others an OpenAI
list ``{"data": [{"id", ...}]}``, and wyoming-polytts adds ``languages``,
``description``, ``installed`` and ``reason``. Errors come as OpenAI's
``{"error": {"message", "code"}}``, FastAPI's ``{"detail": ...}`` or plain text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...common.echo import clip
from ...common.language import locale_style

_LIST_KEYS = ("voices", "uploaded_voices", "data")
_NAME_KEYS = ("id", "voice_id", "name")
_DESCRIPTION_KEYS = ("description", "speaker_description")


@dataclass(frozen=True)
class ListedVoice:
    """One voice as the upstream lists it (or as the configuration names it)."""

    name: str
    """The upstream's own name for it, sent as ``voice``."""

    languages: list[str] = field(default_factory=list)
    """``en_US`` style; empty when the upstream does not say."""

    description: str | None = None
    installed: bool = True
    reason: str | None = None
    """Why the upstream cannot use it, when it says so."""


class ListingError(ValueError):
    """The answer is not a voice list in a shape this module knows."""


def parse_voice_list(data: Any) -> list[ListedVoice]:
    """The voices in a decoded ``GET /audio/voices`` answer, each name once, in order."""
    items: list[Any] | None = data if isinstance(data, list) else None
    if isinstance(data, dict):
        lists = [data[key] for key in _LIST_KEYS if isinstance(data.get(key), list)]
        items = [item for found in lists for item in found] if lists else None
    if items is None:
        raise ListingError(f"expected a list of voices (under {', '.join(_LIST_KEYS)})")
    voices: dict[str, ListedVoice] = {}
    for item in items:
        voice = _voice(item)
        if voice is not None:
            voices.setdefault(voice.name, voice)
    return list(voices.values())


def _voice(item: Any) -> ListedVoice | None:
    if isinstance(item, str):
        return ListedVoice(item) if item.strip() else None
    if not isinstance(item, dict):
        return None
    name = next((item[key] for key in _NAME_KEYS if isinstance(item.get(key), str)), "")
    if not name.strip():
        return None
    description = next((item[key] for key in _DESCRIPTION_KEYS if _text(item.get(key))), None)
    if description is None and _text(item.get("name")) and item["name"] != name:
        description = item["name"]  # {"id": "af_bella", "name": "Bella"}
    installed = item.get("installed")
    reason = item.get("reason")
    return ListedVoice(
        name=name,
        languages=_languages(item),
        description=description,
        installed=installed is not False,
        reason=reason if _text(reason) else None,
    )


def _languages(item: dict[str, Any]) -> list[str]:
    found = item.get("languages")
    if not isinstance(found, list):
        found = [item.get("language") or item.get("locale")]
    return [locale_style(code) for code in found if _text(code) and " " not in code]


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def error_message(data: Any, text: str) -> tuple[str, str | None]:
    """The message and code of an error answer (decoded JSON, or None, and its text)."""
    error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(error, list) and error:  # FastAPI's validation errors
        error = error[0]
    if isinstance(error, dict):
        message = next(
            (error[key] for key in ("message", "msg", "error", "detail") if _text(error.get(key))),
            None,
        )
        code = error.get("code") if _text(error.get("code")) else error.get("type")
        return clip(message or text.strip() or "no details"), code if _text(code) else None
    if _text(error):
        return clip(error), None
    return clip(text.strip() or "no details"), None

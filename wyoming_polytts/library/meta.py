"""A library voice's metadata (its ``voice.yaml``): the fields, their checks, and what a
broken file still yields.

Metadata a client sends and metadata read from disk go through the same typed
conversion (:func:`wyoming_polytts.common.schema.from_dict`), so a wrong type is refused
with the field's name whichever way it comes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..common.echo import clip
from ..common.schema import from_dict
from ..errors import ConfigError, InvalidRequestError

META_FILE = "voice.yaml"
AUDIO_FILE = "reference.wav"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A voice name, matched whole (``fullmatch``): a safe folder name everywhere."""

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Z][A-Za-z]{1,3})?")


@dataclass
class VoiceMeta:
    """The contents of a voice's voice.yaml."""

    name: str | None = None
    """Display name (``display_name`` over HTTP); the folder name when absent."""

    languages: list[str] = field(default_factory=list)
    """Languages the voice speaks, ``en_US`` or ``en`` style."""

    default_language: str | None = None
    transcript: str | None = None
    """What the reference recording says (needed by some engines)."""

    description: str | None = None
    engines: list[str] = field(default_factory=list)
    """Engines that may use the voice; empty means every engine that clones."""

    created: str | None = None
    """ISO 8601 time of registration."""

    audio: str = AUDIO_FILE
    """The reference recording, relative to the voice's folder."""


def check_name(name: str) -> str:
    """A voice name is a safe folder name: letters, digits, ``-`` and ``_``."""
    if not NAME.fullmatch(name):
        raise InvalidRequestError(
            f"invalid voice name {clip(name, 80)!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_languages(languages: list[str]) -> list[str]:
    """Languages as ``en`` or ``en_US``; ``en-us`` is accepted and normalized."""
    normalized = []
    for language in languages:
        lang, _, region = language.replace("-", "_").partition("_")
        value = f"{lang.lower()}_{region.upper()}" if region else lang.lower()
        if not _LANGUAGE.fullmatch(value):
            raise InvalidRequestError(
                f"invalid language {clip(language, 20)!r}: use e.g. en or en_US"
            )
        normalized.append(value)
    return normalized


def parse_meta(data: Mapping[str, Any]) -> VoiceMeta:
    """Metadata a client sent, checked field by field (400 naming the field), with its
    languages normalized."""
    try:
        meta = from_dict(VoiceMeta, dict(data), "voice")
    except ConfigError as err:
        raise InvalidRequestError(str(err)) from err
    return normalized(meta)


def normalized(meta: VoiceMeta) -> VoiceMeta:
    """``meta`` with its languages checked and written as ``en`` or ``en_US``."""
    default = meta.default_language
    return replace(
        meta,
        languages=check_languages(meta.languages),
        default_language=check_languages([default])[0] if default else None,
    )


def read_meta(path: Path) -> VoiceMeta:
    """A voice.yaml as written; raises OSError, YAMLError or ConfigError when broken."""
    meta = from_dict(VoiceMeta, yaml.safe_load(path.read_text(encoding="utf-8")), META_FILE)
    _check_audio_name(meta.audio)
    return meta


def salvage_meta(folder: Path) -> VoiceMeta:
    """What a broken voice.yaml still holds: every field that is valid on its own, and
    the registration time (else the recording's modification time), so that repairing
    the file keeps them."""
    try:
        raw = yaml.safe_load((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        raw = None
    kept: dict[str, Any] = {}
    for name in (f.name for f in fields(VoiceMeta)):
        if not isinstance(raw, dict) or name not in raw:
            continue
        try:
            value = getattr(from_dict(VoiceMeta, {name: raw[name]}), name)
            if name == "audio":
                _check_audio_name(value)
        except ConfigError:
            continue
        kept[name] = value
    if kept.get("created") is None:
        kept["created"] = _modified(folder / kept.get("audio", AUDIO_FILE))
    return VoiceMeta(**kept)


def created_now() -> str:
    """The current time as ``created`` records it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def dump_meta(meta: VoiceMeta) -> bytes:
    """``meta`` as voice.yaml, without empty fields."""
    data = {key: value for key, value in asdict(meta).items() if value not in (None, [])}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode()


def _check_audio_name(audio: str) -> None:
    if Path(audio).name != audio or audio in ("", ".", ".."):
        raise ConfigError(f"{META_FILE}.audio: expected a file name in the voice folder")


def _modified(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    except OSError:
        return None

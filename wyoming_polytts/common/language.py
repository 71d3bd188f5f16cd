"""Languages: matching requested codes to an engine's, and detecting them in text.

Home Assistant never sends a language, so a multilingual voice usually has to
find out which language a sentence is in. Detection uses lingua (a maintained,
offline detector) restricted to the languages the engine speaks, which makes
it both faster and more accurate than asking among all languages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lingua import LanguageDetector as LinguaDetector

_LOGGER = logging.getLogger(__name__)

_MIN_RELATIVE_DISTANCE = 0.1
"""How clearly the best language must win; below it detection answers None.
Keeps one-word texts such as "OK." from being guessed (as Hungarian)."""


def _normalize(code: str) -> str:
    return code.strip().lower().replace("_", "-")


def _base(code: str) -> str:
    return _normalize(code).split("-", 1)[0]


def match_language(requested: str, supported: Sequence[str]) -> str | None:
    """The code in ``supported`` that serves ``requested``, or None.

    Matches exactly first (``zh-CN`` → ``zh-cn``), then by base language
    (``de_DE`` → ``de``, ``zh`` → ``zh-cn``). Case and ``_``/``-`` are ignored.
    """
    wanted = _normalize(requested)
    for code in supported:
        if _normalize(code) == wanted:
            return code
    base = _base(wanted)
    return next((code for code in supported if _base(code) == base), None)


def locale_style(code: str) -> str:
    """``zh-cn`` as ``zh_CN``, ``en`` as is: the style voices advertise languages in."""
    language, _, region = _normalize(code).partition("-")
    return f"{language}_{region.upper()}" if region else language


class LanguageDetector:
    """Tells which of a fixed set of languages a text is written in."""

    def __init__(self, languages: Sequence[str], accurate: bool = True) -> None:
        """Build the detector (blocking: the accurate models take seconds and ~400 MB).

        ``languages`` are ISO 639-1 codes, optionally with a region (``zh-cn``);
        :meth:`detect` answers with the code as given here. ``accurate`` uses
        lingua's full models, which tell short sentences apart far better than
        its low-accuracy mode (tens of MB, milliseconds to build).
        """
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        self._codes: dict[Language, str] = {}
        for code in languages:
            try:
                iso = getattr(IsoCode639_1, _base(code).upper())
            except AttributeError:
                _LOGGER.warning("Language detection cannot recognize '%s'; leaving it out", code)
                continue
            self._codes.setdefault(Language.from_iso_code_639_1(iso), code)
        if len(self._codes) < 2:
            raise ValueError(f"language detection needs two known languages, got {languages!r}")
        builder = LanguageDetectorBuilder.from_languages(*self._codes)
        builder = builder.with_minimum_relative_distance(_MIN_RELATIVE_DISTANCE)
        if not accurate:
            builder = builder.with_low_accuracy_mode()
        self._detector: LinguaDetector = builder.with_preloaded_language_models().build()

    def detect(self, text: str) -> str | None:
        """The language of ``text``, or None when it is not clear (too short, no letters)."""
        found = self._detector.detect_language_of(text)
        return None if found is None else self._codes[found]

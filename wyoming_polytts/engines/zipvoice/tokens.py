# ruff: noqa: RUF001  (full-width punctuation is meant)
"""Text to ZipVoice tokens, as the model's Emilia tokenizer spells them.

ZipVoice (Chinese and English) reads two kinds of tokens: espeak-ng's IPA
(``en-us``), one token per character, for everything that is not Chinese; and
for Chinese, pinyin split into its initial (marked with a ``0``) and its final
with the tone (``zh0 ong1``). sherpa-onnx 2 no longer phonemizes with espeak-ng
itself, so the tokens are made here (espeak-ng from the ``espeakng-loader``
package through ``phonemizer-fork``, pinyin from ``pypinyin``) and handed to it
as strings. Numbers inside Chinese are first written in Chinese with cn2an.
Tokens the model's ``tokens.txt`` does not know are left out.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

_LOGGER = logging.getLogger(__name__)
_PHONEMIZER_LOGGER = logging.getLogger(f"{__name__}.phonemizer")
_PHONEMIZER_LOGGER.setLevel(logging.ERROR)  # its word-count warnings do not matter here

_HAN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")
_HAN_WITH_NUMBERS = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff0-9.%:/\-]*"
    r"(?:[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff][0-9]|[0-9][\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff0-9.%:/\-]*"
)
"""Chinese text with Arabic numbers in it (or touching it): read in Chinese, as ZipVoice's
own normalizer does with cn2an."""
_SPEAKABLE = re.compile(r"\w")
_PUNCTUATION = str.maketrans(
    {"，": ",", "。": ".", "！": "!", "？": "?", "；": ";", "：": ":", "、": ","}
    | {"“": '"', "”": '"', "‘": "'", "’": "'"}
)
_SENTENCE_END = ".!?;:,"


def read_tokens(path: Path) -> dict[str, int]:
    """``tokens.txt`` (``{token}\\t{id}`` per line; a line holding only an id is the space)."""
    table: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        if len(fields) == 1 and fields[0].strip().isdigit():
            table[" "] = int(fields[0])
        elif len(fields) == 2:
            table[fields[0]] = int(fields[1])
    return table


class Tokenizer:
    """Turns text into the token strings of one ZipVoice model (thread-safe)."""

    def __init__(self, tokens_file: Path) -> None:
        import espeakng_loader
        from phonemizer.backend import EspeakBackend
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        self.table = read_tokens(tokens_file)
        EspeakWrapper.set_library(espeakng_loader.get_library_path())
        EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
        self._espeak = EspeakBackend(
            "en-us",
            preserve_punctuation=True,
            with_stress=True,
            language_switch="remove-flags",
            words_mismatch="ignore",
            logger=_PHONEMIZER_LOGGER,
        )
        self._lock = threading.Lock()  # one espeak-ng instance: one caller at a time

    def __call__(self, text: str) -> list[str]:
        """The known tokens of ``text``, ending with punctuation as ZipVoice was trained."""
        text = _HAN_WITH_NUMBERS.sub(_numbers_in_chinese, text)
        text = " ".join(text.translate(_PUNCTUATION).split())
        if text and text[-1] not in _SENTENCE_END:
            text += "."
        tokens: list[str] = []
        for part in _HAN.split(text):
            if _HAN.fullmatch(part):
                tokens += _pinyin(part)
            elif _SPEAKABLE.search(part):
                tokens += list(self._phonemes(part))
            else:
                tokens += list(part)
        known = [token for token in tokens if token in self.table]
        if len(known) < len(tokens):
            unknown = sorted({token for token in tokens if token not in self.table})
            _LOGGER.debug("ZipVoice has no token for %s in %r", unknown, text[:80])
        return known

    def _phonemes(self, text: str) -> str:
        with self._lock:
            phonemized = self._espeak.phonemize([text], strip=True)
        # strip=True drops the spaces at the ends: keep those between Chinese and the rest.
        lead = " " if text[:1].isspace() else ""
        trail = " " if text[-1:].isspace() else ""
        return f"{lead}{phonemized[0] if phonemized else ''}{trail}"


def _numbers_in_chinese(match: re.Match[str]) -> str:
    """``2024年5月`` as 二零二四年五月, ``12.5%`` as 百分之十二点五 (cn2an's rules)."""
    import cn2an

    return str(cn2an.transform(match.group(), "an2cn"))


def _pinyin(text: str) -> list[str]:
    """Pinyin tokens of Chinese characters: initial + ``0``, then the final with its tone."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    syllables = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True)
    tokens = []
    for syllable in syllables:
        initial = to_initials(syllable, strict=False)
        final = to_finals_tone3(syllable, strict=False, neutral_tone_with_five=True)
        tokens += [f"{initial}0"] if initial else []
        tokens += [final] if final else []
    return tokens

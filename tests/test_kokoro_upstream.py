# ruff: noqa: RUF001  (IPA symbols and full-width punctuation are meant)
"""Kokoro's phonemes and ONNX Runtime against what upstream does (issue 25).

English through espeak-ng is rewritten as misaki's own espeak fallback rewrites
it; Mandarin goes through misaki (the kokoro extra's ``misaki[zh]``), whose
phonemes carry the tones that espeak-ng's digits lose; and a machine with both
ONNX Runtime builds is told which one to keep.
"""

from __future__ import annotations

import pytest

from wyoming_polytts.engines.kokoro.g2p import Phonemizers, _choose, _Espeak
from wyoming_polytts.engines.kokoro.runtime import both_builds_warning, installed_builds
from wyoming_polytts.engines.kokoro.voices import LANGUAGES
from wyoming_polytts.engines.kokoro.weights import load_vocab

TONES = set("→↗↓↘")
"""misaki's Mandarin tone marks (first to fourth tone), all in Kokoro's vocabulary."""


@pytest.mark.parametrize(
    ("word", "expected", "not_expected"),
    [
        ("button", "bˈʌtn", "ᵊn"),  # glottal stop + syllabic n: t-n, not t-schwa-n
        ("bottle", "ᵊl", "əl"),  # a tied schwa-l
        ("croissant", "kwˈɑsɑ", "\u0303"),  # a nasal vowel loses its tilde
        ("cafe", "fA", "e"),
    ],
)
def test_english_espeak_is_rewritten_as_misaki_does(
    word: str, expected: str, not_expected: str
) -> None:
    phonemes = _Espeak("en_US")(word)
    assert expected in phonemes and not_expected not in phonemes, phonemes


def test_english_rewrites_stay_in_kokoros_vocabulary() -> None:
    vocab = load_vocab()
    for text in ("button", "bottle", "croissant", "cafe", "Moscow"):
        for code in ("en_US", "en_GB"):
            assert set(_Espeak(code)(text)) <= set(vocab) | {" "}, (text, code)


def test_mandarin_keeps_its_tones() -> None:
    _, library = _choose("zh")
    assert library == "misaki", "misaki[zh] is part of the kokoro extra"
    phonemes = Phonemizers(load_vocab()).phonemes("你好，今天天气很好。", LANGUAGES["z"])
    assert TONES & set(phonemes), phonemes
    assert set(load_vocab()) >= TONES
    espeak = _Espeak("zh")("你好，今天天气很好。")
    assert not TONES & set(espeak), "espeak-ng's Mandarin was expected to carry no tone marks"


def test_both_onnxruntime_builds_are_named() -> None:
    assert "onnxruntime" in installed_builds()
    message = both_builds_warning(["onnxruntime", "onnxruntime-gpu"])
    assert message is not None and "pip uninstall -y onnxruntime onnxruntime-gpu" in message
    assert both_builds_warning(["onnxruntime-gpu"]) is None
    assert both_builds_warning(["onnxruntime"]) is None

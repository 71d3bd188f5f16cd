"""Sentence splitting: whole texts, streams, and the bound on sentence length."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wyoming_polytts.common.text import SentenceSplitter, speakable, split_long, split_sentences


def test_sentences_of_a_text() -> None:
    assert split_sentences("Hello there. How are you? Fine!", 300) == [
        "Hello there.",
        "How are you?",
        "Fine!",
    ]


def test_long_sentence_splits_at_clauses_first() -> None:
    sentence = "When the sun goes down, the lights turn on; the doors lock, and the house sleeps"
    pieces = split_long(sentence, 40)
    assert pieces == [
        "When the sun goes down,",
        "the lights turn on; the doors lock,",
        "and the house sleeps",
    ]


def test_stream_yields_sentences_as_they_complete() -> None:
    splitter = SentenceSplitter(300)
    assert splitter.add("The door is ") == []
    assert splitter.add("locked. The lights") == ["The door is locked."]
    assert splitter.add(" are off.") == []
    assert splitter.finish() == ["The lights are off."]


@given(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="*"), max_size=400),
    st.integers(5, 80),
)
def test_every_piece_is_bounded_and_no_word_is_lost(text: str, limit: int) -> None:
    pieces = split_sentences(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(speakable(text).split())


def test_control_characters_and_lone_surrogates_are_dropped() -> None:
    sentences = split_sentences("Hello\x00 there.\x1b Bye\ud800 now.", 300)
    assert [" ".join(s.split()) for s in sentences] == ["Hello there.", "Bye now."]

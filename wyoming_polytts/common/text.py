"""Text into sentences, whole or as a stream, with a bound on sentence length.

Sentence boundaries come from sentence-stream (the splitter Home Assistant's
stack uses); a sentence longer than the limit is split further at clause
punctuation, then at spaces, so no single synthesis call grows without bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sentence_stream import SentenceBoundaryDetector

_UNSPEAKABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters and lone surrogates: no engine can speak them, some crash on them."""

_CLAUSE_END = re.compile(
    r"(?<=[,;:\u2014\u2013\uff0c\u3001\uff1b\uff1a])\s*|\s+(?=[\u2014\u2013-]\s)"
)


def speakable(text: str) -> str:
    """The text with control characters and lone surrogates replaced by spaces."""
    return _UNSPEAKABLE.sub(" ", text)


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Split one sentence into pieces of at most ``max_chars`` characters.

    Prefers clause boundaries, then word boundaries; only a single word longer
    than the limit is cut inside the word.
    """
    sentence = sentence.strip()
    if len(sentence) <= max_chars:
        return [sentence] if sentence else []
    pieces: list[str] = []
    current = ""
    for clause in _split_keep(sentence, _CLAUSE_END):
        for word in _fit(clause, max_chars):
            joined = f"{current} {word}" if current else word
            if len(joined) <= max_chars:
                current = joined
            else:
                pieces.append(current)
                current = word
    if current:
        pieces.append(current)
    return pieces


def _split_keep(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [part.strip() for part in pattern.split(text) if part.strip()]


def _fit(clause: str, max_chars: int) -> list[str]:
    """A clause if it fits, else its words, with over-long words cut."""
    if len(clause) <= max_chars:
        return [clause]
    words: list[str] = []
    for word in clause.split():
        words.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return words


class SentenceSplitter:
    """Turns a stream of text chunks into bounded sentences, as soon as each is complete."""

    def __init__(self, max_sentence_chars: int) -> None:
        self._detector = SentenceBoundaryDetector()
        self._max = max_sentence_chars

    def add(self, chunk: str) -> list[str]:
        """Add a chunk of text; return the sentences it completed."""
        return self._bound(self._detector.add_chunk(speakable(chunk)))

    def finish(self) -> list[str]:
        """Return what remains once the text has ended."""
        return self._bound([self._detector.finish()])

    def _bound(self, sentences: Iterable[str]) -> list[str]:
        return [piece for s in sentences for piece in split_long(s, self._max)]


def split_sentences(text: str, max_sentence_chars: int) -> list[str]:
    """All sentences of a whole text."""
    splitter = SentenceSplitter(max_sentence_chars)
    return splitter.add(text) + splitter.finish()

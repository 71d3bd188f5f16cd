"""A sentence's phonemes as Kokoro model calls, and each call's audio as a piece to send.

Phonemes beyond the model's context are spoken in pieces cut at clause, then word
boundaries. A request's first sentence, when it is long enough, starts with a short
piece of a few words: its listener hears nothing until that piece is done, and
between the two pieces the pool can give the worker to another request waiting for
its first audio.

Every call's speech comes wrapped in near silence (on the int8 model about 0.27 s
before it and 0.65 s after it), which other Kokoro front ends trim as well. It is cut
down to a short lead, a short gap where a sentence was cut, and a sentence pause
after a sentence's end, so the first bytes sent are speech and sentences follow
each other without a second of silence between them.
"""

from __future__ import annotations

import numpy as np

from ...common.audio import shorten_silences
from ...common.text import split_long

SAMPLE_RATE = 24_000
"""Hertz of every Kokoro voice."""

FIRST_TOKENS = 24
"""Tokens a request's first piece aims at (about five words, 1.2 s of speech)."""

FIRST_TOKENS_CROWDED = 12
"""Tokens a first piece aims at while other requests' first sentences wait behind it
(``SynthesisRequest.crowded``, about two words). Each of those listeners waits for the
first pieces ahead of it, and this listener's next piece comes after theirs whatever
the length of its first one, so a shorter one starts everyone sooner: with eight
Kokoro answers at once on two cores, first pieces go out in four turns of two."""

_SPLIT_FROM = FIRST_TOKENS * 3 // 2
"""Fewest tokens of a first sentence that is split: below it the model's fixed cost of
another call (the silence it computes around the speech) outweighs the earlier start."""

_CLAUSE_MARKS = frozenset(",;:")

_LEAD_SECONDS = 0.05
"""Silence kept before each piece's speech."""

_GAP_SECONDS = 0.05
"""Silence kept after a piece that ends inside a sentence."""

_PAUSE_SECONDS = 0.2
"""Silence kept after a sentence's last piece (about the 0.25 s pause kokoro-onnx puts
between sentences, with the next one's lead)."""


def model_pieces(phonemes: str, first: bool, max_tokens: int, crowded: bool = False) -> list[str]:
    """The phonemes of one sentence as the model calls that speak it, in order;
    ``first`` and ``crowded`` as in ``SynthesisRequest``."""
    pieces = split_long(phonemes, max_tokens)
    if first and pieces:
        cut = _first_cut(pieces[0], FIRST_TOKENS_CROWDED if crowded else FIRST_TOKENS)
        if cut is not None:
            pieces[:1] = [pieces[0][:cut].rstrip(), pieces[0][cut:].lstrip()]
    return pieces


def _first_cut(phonemes: str, target: int) -> int | None:
    """Where a first piece ends: after the clause mark nearest to ``target`` tokens (from
    a third to twice that), else at the word boundary nearest to it (from half); None
    when the sentence is not worth a cut or has no boundary there."""
    if len(phonemes) < _SPLIT_FROM:
        return None
    rest = len(phonemes) - FIRST_TOKENS // 2
    spaces = [i for i, symbol in enumerate(phonemes) if symbol == " " and i <= rest]
    clauses = [
        i for i in spaces if phonemes[i - 1] in _CLAUSE_MARKS and target // 3 <= i <= 2 * target
    ]
    words = [i for i in spaces if i >= target // 2]
    candidates = clauses or words
    if not candidates:
        return None
    return min(candidates, key=lambda i: abs(i - target))


def trimmed(audio: np.ndarray, ends_sentence: bool) -> np.ndarray:
    """One call's audio with the silence around its speech cut down."""
    tail = _PAUSE_SECONDS if ends_sentence else _GAP_SECONDS
    return shorten_silences(audio, SAMPLE_RATE, _LEAD_SECONDS, None, tail_seconds=tail)

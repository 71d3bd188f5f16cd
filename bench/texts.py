"""The fixed text set, and the chunking that imitates an LLM's streamed reply."""

from __future__ import annotations

from dataclasses import dataclass

from wyoming_polytts.common.text import split_sentences


@dataclass(frozen=True)
class Text:
    """One benchmark text."""

    kind: str
    """``short`` (one sentence), ``answer`` (two or three) or ``long`` (a paragraph)."""

    text: str


TEXTS: tuple[Text, ...] = (
    Text("short", "The living room lights are now off."),
    Text("short", "It is currently twenty one degrees and sunny outside."),
    Text("short", "Your timer for ten minutes has started."),
    Text(
        "answer",
        "The front door is locked and the garage door is closed. "
        "All the lights downstairs are off. Good night.",
    ),
    Text(
        "answer",
        "Tomorrow will be cloudy with a high of eighteen degrees. "
        "Rain is likely in the afternoon, so take an umbrella.",
    ),
    Text(
        "answer",
        "The washing machine finished twenty minutes ago. "
        "The dryer is still running and has about half an hour left. "
        "I will let you know when it is done.",
    ),
    Text(
        "long",
        "Here is a summary of your day. You have three meetings: the first starts at nine "
        "in the small conference room, the second is a call with the design team at eleven, "
        "and the last one runs from two until three thirty. The weather stays dry until the "
        "evening, when a light rain is expected, and the temperature will reach a high of "
        "nineteen degrees. Your package from the hardware store is out for delivery and "
        "should arrive before noon. The dishwasher has finished, the robot vacuum is "
        "charging, and the energy use of the house so far today is a little lower than "
        "yesterday. Finally, remember that the recycling goes out tonight.",
    ),
)

KINDS: tuple[str, ...] = ("short", "answer", "long")

WORDS_PER_CHUNK = 3
"""Words per ``synthesize-chunk``, roughly what an LLM's deltas carry."""

_MAX_SENTENCE_CHARS = 300


def texts_for(quick: bool) -> list[Text]:
    """All texts, or only the first of each kind in quick mode."""
    if not quick:
        return list(TEXTS)
    return [next(t for t in TEXTS if t.kind == kind) for kind in KINDS]


@dataclass(frozen=True)
class StreamPlan:
    """A text cut into streamed chunks."""

    chunks: list[str]
    first_sentence_end: int
    """Index of the chunk that completes the first sentence."""


def stream_plan(text: str, words_per_chunk: int = WORDS_PER_CHUNK) -> StreamPlan:
    """Chunks of a few words, each starting with its space as LLM deltas do.

    No chunk crosses a sentence boundary, so the harness knows when the first
    sentence was complete on the wire.
    """
    chunks: list[str] = []
    first_end = -1
    for sentence in split_sentences(text, _MAX_SENTENCE_CHARS):
        words = sentence.split()
        for i in range(0, len(words), words_per_chunk):
            piece = " ".join(words[i : i + words_per_chunk])
            chunks.append(f" {piece}" if chunks else piece)
        if first_end < 0:
            first_end = len(chunks) - 1
    return StreamPlan(chunks, first_end)

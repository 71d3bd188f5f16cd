"""Piper below the sentence, and the pool's turns between requests.

The embedded voice's real graph is split at its decoder; decoding it in windows
must give the audio of decoding it whole. In the pool, a request's first
sentence waiting for a worker takes it from another request's sentence between
two pieces, and a request's later sentences take only spare workers, after its first audio,
unless they have waited too long.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.engines.piper.model import (
    CONTEXT_FRAMES,
    FIRST_FRAMES,
    FIRST_FRAMES_ALONE,
    PIECE_FRAMES,
    windows,
)
from wyoming_polytts.engines.piper.split import split_model
from wyoming_polytts.pool import scheduler
from wyoming_polytts.pool.metrics import FrontDoor
from wyoming_polytts.pool.pool import EnginePool
from wyoming_polytts.speech.catalog import Catalog, CatalogVoice
from wyoming_polytts.speech.synthesis import SpeechOptions, iterate, speak

from .helpers import assert_speech_like

RATE = 22050
SAMPLES_PER_FRAME = 256
"""Audio samples per latent frame of the embedded voice (its hop length)."""

SENTENCE = "The front door is locked and the garage door is closed."
LONG_SENTENCE = (
    "Here is a summary of your day with three meetings in the morning, a call with the "
    "design team before lunch, and a long walk in the park with the dog in the evening, "
    "when the rain has stopped and the temperature is a little milder than it was today."
)


def _context(tmp: Path) -> EngineContext:
    return EngineContext(cache_dir=tmp, voices_dir=tmp, threads=2, base_dir=tmp)


@pytest.fixture(scope="module")
def piper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PiperEngine]:
    engine = PiperEngine(PiperOptions(), _context(tmp_path_factory.mktemp("piper")))
    engine.load()
    yield engine
    engine.unload()


def _say(engine: PiperEngine, text: str, first: bool) -> list[np.ndarray]:
    request = SynthesisRequest(text=text, voice=DEFAULT_VOICE, sample_rate=RATE, first=first)
    return list(engine.synthesize(request))


@pytest.mark.parametrize("frames", [1, FIRST_FRAMES, FIRST_FRAMES + 1, 300, 1000])
def test_windows_cover_every_frame_once(frames: int) -> None:
    spans = list(windows(frames))
    assert spans[0][0] == 0 and spans[-1][1] == frames
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert spans[0][1] <= max(FIRST_FRAMES, frames)
    assert all(end - start <= PIECE_FRAMES * 3 // 2 for start, end in spans[1:])


def test_later_sentences_are_decoded_in_bounded_windows(
    piper: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = piper._voice(DEFAULT_VOICE).model
    spans: list[tuple[int, int]] = []
    decode = model.decode

    def recorded(
        latent: np.ndarray, feeds: dict[str, np.ndarray], window: tuple[int, int]
    ) -> np.ndarray:
        spans.append(window)
        return decode(latent, feeds, window)

    monkeypatch.setattr(model, "decode", recorded)
    (audio,) = _say(piper, LONG_SENTENCE, first=False)
    assert len(spans) >= 2, "a long sentence should need several windows"
    assert max(end - start for start, end in spans) <= PIECE_FRAMES * 3 // 2
    assert len(audio) == spans[-1][1] * SAMPLES_PER_FRAME


def test_windows_decode_to_the_whole_sentence(piper: PiperEngine) -> None:
    model = piper._voice(DEFAULT_VOICE).model
    assert model.streams
    phonemizer = piper._voice(DEFAULT_VOICE).phonemizer
    ids = np.array([phonemizer.phonemes_to_ids(phonemizer.phonemize(LONG_SENTENCE)[0])])
    feeds = {
        "input": ids,
        "input_lengths": np.array([ids.shape[1]]),
        "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32),
    }
    latent = model.encode(feeds)
    frames = latent.shape[2]
    assert frames > FIRST_FRAMES + PIECE_FRAMES, "the sentence should need several windows"
    whole = model.decode(latent, feeds, (0, frames))
    joined = np.concatenate([model.decode(latent, feeds, w) for w in windows(frames)])
    assert len(whole) == len(joined) == frames * SAMPLES_PER_FRAME
    error = np.sqrt(np.mean(np.square(joined - whole))) / np.sqrt(np.mean(np.square(whole)))
    assert error < 2e-3, f"windows with {CONTEXT_FRAMES} frames of context differ by {error:.1e}"


def test_a_first_sentence_comes_in_pieces_and_the_others_whole(piper: PiperEngine) -> None:
    first = _say(piper, SENTENCE, first=True)
    assert len(first) >= 2
    assert len(first[0]) == FIRST_FRAMES_ALONE * SAMPLES_PER_FRAME, "nothing else computes"
    model = piper._voice(DEFAULT_VOICE).model
    with model.occupancy.enter():  # another sentence computing meanwhile
        busy = _say(piper, SENTENCE, first=True)
    assert len(busy[0]) == FIRST_FRAMES * SAMPLES_PER_FRAME
    later = _say(piper, SENTENCE, first=False)
    assert len(later) == 1
    for pieces in (first, later):
        audio = np.concatenate(pieces)
        assert_speech_like(audio, RATE, SENTENCE)
        assert np.abs(audio.astype(np.int32)).max() > 0.5 * 32767, "far quieter than Piper's"


async def test_first_sentence_in_pieces_says_the_text(piper: PiperEngine, transcriber) -> None:
    transcriber.assert_says(
        np.concatenate(_say(piper, LONG_SENTENCE, first=True)), RATE, LONG_SENTENCE
    )


def test_streaming_off_runs_sentences_whole(tmp_path: Path) -> None:
    engine = PiperEngine(PiperOptions(streaming=False), _context(tmp_path))
    engine.load()
    pieces = _say(engine, SENTENCE, first=True)
    assert len(pieces) == 1
    assert np.abs(pieces[0].astype(np.int32)).max() >= 32766, "Piper normalises each sentence"
    assert not (tmp_path / "piper-split").exists()


def test_a_graph_without_piper_layout_is_not_split(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"], name="copy")],
        "not-piper",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])],
    )
    model = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(model))
    assert split_model(model, tmp_path / "cache") is None
    assert split_model(model, tmp_path / "cache") is None  # from the cache now
    (folder,) = (tmp_path / "cache").iterdir()
    assert [p.name for p in folder.iterdir()] == ["split.json"]


def test_a_broken_model_file_fails_the_split_clearly(tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match=r"splitting broken.onnx failed: .+"):
        split_model(model, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == [], "the staging folder was left behind"


# --- turns in the pool ------------------------------------------------------------------


class _CountingPiper(PiperEngine):
    """The real Piper engine, counting the sentences it works on at the same moment and
    logging when each starts and hands over a piece."""

    def __init__(self, options: PiperOptions, context: EngineContext) -> None:
        super().__init__(options, context)
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.log: list[tuple[str, str]] = []
        """("start" or "piece", the sentence), in order."""
        self.crowded: dict[str, bool] = {}
        """Each sentence's ``SynthesisRequest.crowded`` as it started."""

    def synthesize(self, request: SynthesisRequest) -> Iterator[np.ndarray]:
        pieces = super().synthesize(request)
        with self._lock:
            self.log.append(("start", request.text))
            self.crowded[request.text] = request.crowded
        while True:
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                piece = next(pieces, None)
            finally:
                with self._lock:
                    self.now -= 1
            if piece is None:
                return
            with self._lock:  # before the pool hears of it
                self.log.append(("piece", request.text))
            yield piece


async def _pool(tmp: Path, concurrency: int) -> tuple[EnginePool, _CountingPiper]:
    engine = _CountingPiper(PiperOptions(concurrency=concurrency), _context(tmp))
    pool = EnginePool({"piper": engine}, queue_size=8)
    await pool.start(pool.preloaded)
    return pool, engine


async def _listen(
    pool: EnginePool,
    voice: CatalogVoice,
    sentences: list[str],
    lookahead: int,
    heard: asyncio.Event | None = None,
) -> np.ndarray:
    """A request's whole audio through ``speak``; ``heard`` is set at its first piece."""
    speech = speak(
        pool,
        voice,
        iterate(sentences),
        SpeechOptions(),
        lookahead=lookahead,
        front_door=FrontDoor.WYOMING,
    )
    async with aclosing(speech) as pcm:
        pieces = []
        async for piece in pcm:
            if heard is not None:
                heard.set()
            pieces.append(piece)
        return np.concatenate(pieces)


async def test_a_waiting_first_sentence_gets_a_turn_between_pieces(tmp_path: Path) -> None:
    """One worker: B arrives while A's long first sentence is being decoded, and B's
    audio starts before A's sentence is done."""
    pool, _ = await _pool(tmp_path, concurrency=1)
    voice = Catalog(pool, DEFAULT_VOICE).resolve(None)
    timeline: list[str] = []
    b_started = asyncio.Event()

    async def listen(name: str, text: str) -> np.ndarray:
        sentences = iterate([text])
        pieces = []
        async with aclosing(
            speak(
                pool, voice, sentences, SpeechOptions(), lookahead=2, front_door=FrontDoor.WYOMING
            )
        ) as pcm:
            async for piece in pcm:
                timeline.append(name)
                pieces.append(piece)
                if name == "A" and not b_started.is_set():
                    b_started.set()
        return np.concatenate(pieces)

    try:
        a = asyncio.create_task(listen("A", LONG_SENTENCE))
        await b_started.wait()
        b_audio = await listen("B", SENTENCE)
        a_audio = await a
    finally:
        await pool.close()
    assert timeline.count("A") >= 3, timeline
    assert timeline.index("B") < len(timeline) - 1 - timeline[::-1].index("A"), timeline
    assert_speech_like(a_audio, RATE, LONG_SENTENCE)
    assert_speech_like(b_audio, RATE, SENTENCE)


async def test_a_first_sentence_knows_when_others_wait_behind_it(tmp_path: Path) -> None:
    """One worker: A starts alone; B and C arrive while it runs. B starts while C waits
    for its first audio (``crowded``), C starts with nobody waiting."""
    pool, engine = await _pool(tmp_path, concurrency=1)
    voice = Catalog(pool, DEFAULT_VOICE).resolve(None)
    a_heard = asyncio.Event()
    texts = {"A": LONG_SENTENCE, "B": SENTENCE, "C": "Good night."}
    try:
        a = asyncio.create_task(_listen(pool, voice, [texts["A"]], 1, a_heard))
        await a_heard.wait()
        others = asyncio.gather(*(_listen(pool, voice, [texts[n]], 1) for n in "BC"))
        audio = dict(zip("ABC", [await a, *await others], strict=True))
    finally:
        await pool.close()
    assert engine.crowded == {texts["A"]: False, texts["B"]: True, texts["C"]: False}
    for name, pcm in audio.items():
        assert_speech_like(pcm, RATE, texts[name])


async def test_later_sentences_take_spare_workers_once_the_first_is_heard(
    tmp_path: Path,
) -> None:
    """Two workers, one request of several sentences: its later sentences run side by
    side, but none starts before the first sentence's first audio. With two requests,
    both first sentences start before either request's later ones."""
    pool, engine = await _pool(tmp_path, concurrency=2)
    voice = Catalog(pool, DEFAULT_VOICE).resolve(None)
    text = [
        "The lights in the kitchen and in the living room are off now.",
        "The front door is locked and the garage door is closed for the night.",
        "The heating goes down to eighteen degrees until six in the morning.",
        "Sleep well.",
    ]

    try:
        assert_speech_like(await _listen(pool, voice, text, 3), RATE, " ".join(text))
        starts = [i for i, (event, _) in enumerate(engine.log) if event == "start"]
        assert engine.log.index(("piece", text[0])) < starts[1], engine.log
        assert engine.most == 2, "a spare worker took a later sentence"

        engine.log.clear()
        other = ["Good morning.", "It is sunny today."]
        await asyncio.gather(_listen(pool, voice, text, 3), _listen(pool, voice, other, 3))
        started = [sentence for event, sentence in engine.log if event == "start"]
        assert set(started[:2]) == {text[0], other[0]}, started
    finally:
        await pool.close()


async def test_newcomers_cannot_starve_a_request_that_speaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker and an endless line of newcomers: their first sentences go before
    A's second one only until it is overdue (``OVERDUE_AFTER``, one second here);
    without that, A would wait for the last newcomer."""
    monkeypatch.setattr(scheduler, "OVERDUE_AFTER", 1.0)
    pool, engine = await _pool(tmp_path, concurrency=1)
    voice = Catalog(pool, DEFAULT_VOICE).resolve(None)
    a_text = [SENTENCE, "The heating goes down to eighteen degrees until six in the morning."]
    newcomer, most = "Good morning.", 120
    served = itertools.count()
    heard = asyncio.Event()

    async def line(a: asyncio.Task[np.ndarray]) -> None:
        while not a.done() and next(served) < most:
            assert_speech_like(await _listen(pool, voice, [newcomer], 2), RATE, newcomer)

    try:
        a = asyncio.create_task(_listen(pool, voice, a_text, 2, heard))
        await heard.wait()  # A's first audio: the newcomers start once it is heard
        await asyncio.gather(*(line(a) for _ in range(3)))
        assert_speech_like(await a, RATE, " ".join(a_text))
    finally:
        await pool.close()
    starts = [sentence for event, sentence in engine.log if event == "start"]
    before = starts[: starts.index(a_text[1])].count(newcomer)
    assert before < most // 2, f"A's second sentence waited for {before} newcomers"

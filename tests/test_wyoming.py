"""The Wyoming front door against the real server and Piper's embedded voice."""

from __future__ import annotations

import asyncio
import time

from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.tts import Synthesize

from .helpers import (
    ServerProcess,
    assert_speech_like,
    describe,
    synthesize,
    synthesize_stream,
)

SENTENCE = "The quick brown fox jumps over the lazy dog."
ANSWER = "The garage door is closed. All the lights are off. Good night."


def _count(speech_events: list[Event], event_type: str) -> int:
    return sum(1 for e in speech_events if e.type == event_type)


async def test_describe_lists_embedded_voice(server: ServerProcess) -> None:
    info = await describe(server.port)
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.supports_synthesize_streaming
    voices = {v.name: v for v in program.voices}
    joe = voices["en_US-joe-medium"]
    assert joe.installed
    assert joe.languages == ["en_US"]
    assert "Joe" in (joe.description or "")
    assert joe.attribution.name == "rhasspy"


async def test_one_shot_synthesis(server: ServerProcess, transcriber) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, ANSWER)
    assert not speech.errors
    types = [e.type for e in speech.events]
    assert _count(speech.events, "audio-start") == 1
    assert types[-1] == "audio-stop"
    assert (speech.starts[0].rate, speech.starts[0].width, speech.starts[0].channels) == (
        22050,
        2,
        1,
    )
    assert_speech_like(speech.samples, speech.rate, ANSWER)
    transcriber.assert_says(speech.samples, speech.rate, ANSWER)


async def test_streaming_synthesis(server: ServerProcess, transcriber) -> None:
    chunks = [
        "The garage ",
        "door is closed. ",
        "All the lights ",
        "are off. ",
        "Good ",
        "night.",
    ]
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech, sent_before_audio = await synthesize_stream(client, chunks, delay=0.4)
    assert not speech.errors
    assert speech.events[-1].type == "synthesize-stopped"
    assert _count(speech.events, "audio-start") == 1
    assert _count(speech.events, "audio-stop") == 1
    assert speech.rate == 22050
    assert sent_before_audio < len(chunks), "no audio before the last chunk was sent"
    assert_speech_like(speech.samples, speech.rate, ANSWER)
    transcriber.assert_says(speech.samples, speech.rate, ANSWER)


async def test_errors_keep_connection_usable(server: ServerProcess) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        unknown = await synthesize(client, SENTENCE, "no-such-voice")
        assert [e.code for e in unknown.errors] == ["voice-not-found"]
        assert "no-such-voice" in unknown.errors[0].text
        assert not unknown.starts

        empty = await synthesize(client, "   ")
        assert [e.code for e in empty.errors] == ["invalid-text"]

        await client.write_event(Event(type="no-such-event", data={"x": 1}))
        stream, _ = await synthesize_stream(client, ["Hello."], "no-such-voice")
        assert [e.code for e in stream.errors] == ["voice-not-found"]
        assert stream.events[-1].type == "synthesize-stopped"

        good = await synthesize(client, SENTENCE, "en_US-joe-medium")
        assert not good.errors
        assert_speech_like(good.samples, good.rate, SENTENCE)


async def test_too_long_text_is_refused(tmp_path) -> None:
    server = ServerProcess(tmp_path, {"text": {"max_chars": 50}}).start()
    try:
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            long = await synthesize(client, SENTENCE * 3)
            assert [e.code for e in long.errors] == ["invalid-text"]
            assert "limit is 50" in long.errors[0].text
            stream, _ = await synthesize_stream(client, [SENTENCE, SENTENCE])
            assert [e.code for e in stream.errors] == ["invalid-text"]
            assert stream.events[-1].type == "synthesize-stopped"
            good = await synthesize(client, SENTENCE)
            assert not good.errors
    finally:
        assert server.stop() == 0


async def test_concurrent_clients_and_describe_under_load(
    server: ServerProcess, transcriber
) -> None:
    texts = [ANSWER] * 8

    async def one(text: str):
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            speech = await synthesize(client, text)
        return speech, time.perf_counter()

    tasks = [asyncio.create_task(one(t)) for t in texts]
    await asyncio.sleep(0.3)
    await describe(server.port)
    described_at = time.perf_counter()
    results = await asyncio.gather(*tasks)
    assert described_at < max(done for _, done in results), "describe waited for all synthesis"
    for text, (speech, _) in zip(texts, results, strict=True):
        assert not speech.errors
        assert speech.rate == 22050
        assert_speech_like(speech.samples, speech.rate, text)
    speech = results[3][0]
    transcriber.assert_says(speech.samples, speech.rate, ANSWER)


async def test_disconnect_cancels_orphaned_work(server: ServerProcess) -> None:
    long_text = " ".join(f"This is sentence number {n} of a very long story." for n in range(40))
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        started = time.perf_counter()
        full = await synthesize(client, long_text)
        full_time = time.perf_counter() - started
    assert not full.errors

    client = AsyncTcpClient("127.0.0.1", server.port)
    await client.connect()
    await client.write_event(Synthesize(text=long_text).event())
    while True:  # wait for the first audio, then vanish
        event = await asyncio.wait_for(client.read_event(), 30)
        assert event is not None
        if event.type == "audio-chunk":
            break
    await client.disconnect()

    started = time.perf_counter()
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, SENTENCE)
    next_time = time.perf_counter() - started
    assert not speech.errors
    assert next_time < full_time / 2, (
        f"next request took {next_time:.2f}s; the orphaned request alone takes {full_time:.2f}s"
    )


async def test_text_with_nothing_audible_still_ends(server: ServerProcess) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, "... !!! ...")
        assert not speech.errors
        assert [e.type for e in speech.events][-1] == "audio-stop"
        assert len(speech.starts) == 1
        good = await synthesize(client, SENTENCE)
        assert not good.errors

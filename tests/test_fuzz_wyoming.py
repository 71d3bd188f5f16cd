"""Wyoming framing under fuzzing: raw byte streams against the real server over TCP.

Hypothesis builds streams of malformed, oversized, lying, truncated and
out-of-order events. After each one the server must close the connection once
the client has (never hang), answer only with well-formed events, and answer a
describe on a fresh connection; meanwhile another client's streaming synthesis
keeps completing. At the end the server's memory is compared with its memory
after warm-up and its log is checked for tracebacks. Deterministic cases show
which violations keep the connection in sync, and the time limits (in-process,
with small configured limits) show that a stalled or endless client is cut off.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event, read_event

from wyoming_polytts.config import LimitsSettings, parse_config
from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import EngineContext
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.net.clients import Clients
from wyoming_polytts.pool.pool import EnginePool
from wyoming_polytts.speech.catalog import Catalog
from wyoming_polytts.wyoming.handler import HandlerSettings
from wyoming_polytts.wyoming.server import WyomingServer

from .figures import record
from .helpers import (
    ServerProcess,
    assert_speech_like,
    describe,
    free_port,
    synthesize,
    synthesize_stream,
)

_TIMEOUT = 20.0
"""Seconds the server gets to close a connection the client has finished with."""

_EXAMPLES = 100
_IDLE = 1.0
"""Idle timeout of the in-process server with small limits (seconds)."""
_MIB = 1 << 20
_ANSWERS = {"info", "error", "audio-start", "audio-chunk", "audio-stop", "synthesize-stopped"}


def _event(kind: str, data: object = None, payload: bytes = b"", **header: object) -> bytes:
    """One event framed as the wyoming library frames it (data and payload after the line)."""
    data_bytes = json.dumps(data).encode() if data else b""
    fields: dict[str, object] = {"type": kind, "version": "1.8.0"}
    if data_bytes:
        fields["data_length"] = len(data_bytes)
    if payload:
        fields["payload_length"] = len(payload)
    fields.update(header)
    return json.dumps(fields).encode() + b"\n" + data_bytes + payload


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_TYPES = st.sampled_from(
    [
        *("describe", "synthesize", "synthesize-start", "synthesize-chunk", "synthesize-stop"),
        *("audio-chunk", "ping", "", "x" * 300),
    ]
)
_VALID = st.sampled_from(
    [
        _event("describe"),
        _event("synthesize", {"text": "Hi."}),
        _event("synthesize", {"text": "?!"}),
        _event("synthesize", {"text": ""}),
        _event("synthesize-start", {"voice": {"name": "nobody"}}),
        _event("synthesize-start"),
        _event("synthesize-chunk", {"text": "Hello there. "}),
        _event("synthesize-stop"),
        _event("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, b"\0" * 512),
    ]
)
_WRONG_SHAPE = st.builds(
    lambda kind, data: _event(kind, data),
    _TYPES,
    st.dictionaries(st.sampled_from(["text", "voice", "name", "language"]), _JSON, max_size=3),
)
_LYING = st.builds(
    lambda key, value, tail: _event("synthesize", {"text": "Hi."}, **{key: value}) + tail,
    st.sampled_from(["data_length", "payload_length"]),
    st.integers(-5, 2**63) | st.text(max_size=4) | st.floats() | st.booleans() | st.lists(_JSON),
    st.binary(max_size=200),
)
_NOT_UTF8 = (
    st.binary(min_size=1, max_size=60)
    .filter(lambda raw: not _is_utf8(raw))
    .map(lambda raw: raw + b"\n")
)
_GARBAGE = st.binary(max_size=400) | st.text(max_size=100).map(lambda t: t.encode() + b"\n")
_HUGE_HEADER = st.integers(300_000, 2 * _MIB).map(
    lambda n: b'{"type": "describe", "pad": "' + b"a" * n + b'"}\n'
)
_HUGE_LINE = st.integers(300_000, 2 * _MIB).map(lambda n: b"x" * n)
_HUGE_PAYLOAD = st.integers(1, 64 * 1024).map(
    lambda extra: _event("audio-chunk", {"rate": 16000}, b"\0" * (_MIB + extra))
)
_DEEP = st.integers(33, 50_000).map(
    lambda n: b'{"type": "describe", "data": {"x": ' + b"[" * n + b"]" * n + b"}}\n"
)
_PIECE = st.one_of(
    *(_VALID, _WRONG_SHAPE, _LYING, _NOT_UTF8, _GARBAGE),
    *(_HUGE_HEADER, _HUGE_LINE, _HUGE_PAYLOAD, _DEEP),
)
_STREAM = st.builds(
    lambda pieces, keep: _cut(b"".join(pieces), keep),
    st.lists(_PIECE, min_size=1, max_size=5),
    st.none() | st.floats(0, 1),
)
"""A few pieces, sometimes cut off anywhere (a truncated header, data or payload)."""


def _cut(stream: bytes, keep: float | None) -> bytes:
    return stream if keep is None else stream[: int(keep * len(stream))]


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Traffic:
    """Another client, streaming synthesis over and over in its own thread and loop."""

    TEXT = ("The kitchen lights ", "are on. ", "The front door is locked.")

    def __init__(self, port: int) -> None:
        self._port = port
        self._stop = threading.Event()
        self.completed = 0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                async with AsyncTcpClient("127.0.0.1", self._port) as client:
                    speech, _ = await synthesize_stream(client, list(self.TEXT))
                assert not speech.errors, speech.errors
                assert_speech_like(speech.samples, speech.rate, "".join(self.TEXT))
                self.completed += 1
            except Exception as err:  # every failure is reported by the test
                self.failures.append(repr(err))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(Path(tmp_path_factory.mktemp("fuzz-wyoming"))).start()
    yield process
    assert process.stop() == 0, process.log()


def _exchange(port: int, stream: bytes) -> list[Event]:
    """Send ``stream``, close our side, and read every answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT) as sock:
        try:
            sock.sendall(stream)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may close first, e.g. on a header over the limit
            pass
        received = bytearray()
        deadline = time.monotonic() + _TIMEOUT
        while True:
            assert time.monotonic() < deadline, "the server did not close the connection"
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    reader = io.BytesIO(bytes(received))
    events = []
    while reader.tell() < len(received):
        event = read_event(reader)
        assert event is not None, f"malformed answer: {bytes(received[reader.tell() :])[:200]!r}"
        events.append(event)
    return events


def _rss(server: ServerProcess) -> int:
    assert server.process is not None
    return int(psutil.Process(server.process.pid).memory_info().rss)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_fuzzed_streams_never_hurt_the_server(server: ServerProcess) -> None:
    asyncio.run(describe(server.port))  # warm-up: engine loaded, first synthesis done
    with _Traffic(server.port) as traffic:
        while traffic.completed == 0 and not traffic.failures:
            time.sleep(0.1)
        before = _rss(server)
        examples = 0

        @given(stream=_STREAM)
        @settings(
            max_examples=_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(stream: bytes) -> None:
            nonlocal examples
            examples += 1
            for event in _exchange(server.port, stream):
                assert event.type in _ANSWERS, event
            info = asyncio.run(asyncio.wait_for(describe(server.port), 5))
            assert info.tts, "describe lists no TTS program"

        run()
        after = _rss(server)
    assert not traffic.failures, traffic.failures
    assert traffic.completed >= 1
    assert after - before < 128 * _MIB, f"RSS grew from {before >> 20} to {after >> 20} MiB"
    assert "Traceback" not in server.log()
    record("wyoming", "fuzz_examples", examples)
    record("wyoming", "fuzz_crashes", 0)
    record("wyoming", "concurrent_syntheses_completed", traffic.completed)
    record("wyoming", "server_rss_before_mib", round(before / _MIB, 1))
    record("wyoming", "server_rss_after_mib", round(after / _MIB, 1))


# --- what each violation does to the connection -----------------------------


def test_well_framed_violations_keep_the_connection(server: ServerProcess) -> None:
    describe_ = _event("describe")
    cases = {
        "payload-too-large": _event("audio-chunk", {"rate": 1}, b"\0" * (_MIB + 1)),
        "invalid-request": _event("synthesize", {"text": 5}),
    }
    not_utf8_data = b'{"type": "synthesize", "data_length": 3}\n\xff\xfe\x00'
    for code, violation in [*cases.items(), ("invalid-request", not_utf8_data)]:
        events = _exchange(server.port, violation + describe_)
        assert [e.type for e in events] == ["error", "info"], events
        assert events[0].data["code"] == code


@pytest.mark.parametrize(
    "violation",
    [
        b"x" * (300 * 1024),
        b"not json\n",
        b'{"type": "describe", "data_length": -1}\n',
        b'["describe"]\n',
        b'{"type": "describe", "data": ' + b"[" * 1000 + b"]" * 1000 + b"}\n",
        b"\xff\xfe\n",
    ],
    ids=["huge-header", "not-json", "negative-length", "not-an-object", "deep", "not-utf8"],
)
def test_lost_framing_answers_then_closes(server: ServerProcess, violation: bytes) -> None:
    events = _exchange(server.port, violation + b"\n" + _event("describe"))
    assert [e.type for e in events] == ["error"], events


async def test_events_out_of_order_are_ignored_or_ended(server: ServerProcess) -> None:
    chunk = _event("synthesize-chunk", {"text": "Hello there. "})
    stop = _event("synthesize-stop")
    start = _event("synthesize-start")
    # A chunk and a stop outside any stream are ignored: the describe after them is answered.
    assert [e.type for e in _exchange(server.port, chunk + stop + _event("describe"))] == ["info"]
    # A start inside a stream ends the first (which had no text), then speaks the second.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(start + start + chunk + stop)
    types: list[str] = []
    while types.count("synthesize-stopped") < 2:
        event = await asyncio.wait_for(async_read_event(reader), _TIMEOUT)
        assert event is not None, types
        types.append(event.type)
    writer.close()
    assert "audio-chunk" in types, types


# --- time limits (in-process, with small configured limits) ------------------


@pytest.fixture(scope="module")
async def limited_port(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    tmp = Path(tmp_path_factory.mktemp("wyoming-limits"))
    limits = {"event_timeout": 1.0, "idle_timeout": _IDLE, "max_stream_seconds": 3.0}
    config = parse_config({"wyoming": limits}, tmp)
    context = EngineContext(cache_dir=tmp, voices_dir=tmp, threads=1, base_dir=tmp)
    pool = EnginePool({"piper": PiperEngine(PiperOptions(), context)}, queue_size=4)
    await pool.start(["piper"])
    port = free_port()
    settings = HandlerSettings.from_config(config)
    server = WyomingServer(Catalog(pool, DEFAULT_VOICE), pool, settings, Clients(LimitsSettings()))
    await server.start(f"tcp://127.0.0.1:{port}")
    yield port
    await server.close()
    await pool.close()


async def _answers(reader: asyncio.StreamReader) -> list[str]:
    """Event types until the server closes the connection."""
    data = await asyncio.wait_for(reader.read(), _TIMEOUT)
    stream = io.BytesIO(data)
    types = []
    while (event := read_event(stream)) is not None:
        types.append(event.type)
    return types


async def test_a_stalled_event_is_cut_off(limited_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited_port)
    writer.write(b'{"type": "synthesize", "data_length": 100}\n{"text": ')
    assert await _answers(reader) == ["error"]
    writer.close()


async def test_an_idle_connection_is_closed_but_not_while_answered(limited_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited_port)
    assert await _answers(reader) == []
    writer.close()
    # Synthesis that takes longer than the idle timeout is answered in full.
    text = "The kitchen lights are on, and the front door is locked. " * 12
    started = time.monotonic()
    async with AsyncTcpClient("127.0.0.1", limited_port) as client:
        speech = await synthesize(client, text)
    assert time.monotonic() - started > _IDLE, "synthesis too quick to show anything"
    assert not speech.errors, speech.errors
    assert_speech_like(speech.samples, speech.rate, text)


async def test_a_stream_open_too_long_is_ended(limited_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited_port)
    writer.write(_event("synthesize-start") + _event("synthesize-chunk", {"text": "Hello. "}))
    types: list[str] = []
    while "synthesize-stopped" not in types:
        line = await asyncio.wait_for(reader.readline(), _TIMEOUT)
        header = json.loads(line)
        length = header.get("data_length", 0) + header.get("payload_length", 0)
        data = await reader.readexactly(header.get("data_length", 0)) if length else b""
        await reader.readexactly(header.get("payload_length", 0))
        types.append(header["type"])
        if header["type"] == "error":
            assert b"stream still open after 3 s" in data
    assert "error" in types and types[-1] == "synthesize-stopped", types
    writer.close()

"""Hostile input that once held connections, raised tracebacks or flooded the log, through
the real server: bodies that never finish (raw sockets), integers past Python's
int-string limit (HTTP and Wyoming), a 900 KB voice name, a voices folder that is not
a folder, and what a crash left in the voice library before the server started.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.event import async_read_event
from wyoming.tts import Synthesize, SynthesizeVoice

from .figures import record
from .helpers import TIMEOUT, ServerProcess, Speech, read_until, synthesize
from .test_voice_api import _form

_BODY_TIMEOUT = 1.0
"""openai.body_timeout of the test server (seconds)."""

_SPEECH = {"input": "The kettle is on.", "response_format": "pcm"}
_HUGE_NAME = "x" * 900_000
_JOE = "en_US-joe-medium"
_LEFTOVERS = (".tmp-0123", ".trash-4567", ".claim-joe")
_PARTIAL = ".voice.yaml.0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server started on a voices folder holding what a kill -9 mid-change leaves."""
    tmp = Path(tmp_path_factory.mktemp("hardening"))
    voice = tmp / "voices" / "kept"
    voice.mkdir(parents=True)
    (voice / "voice.yaml").write_text("description: kept\n")
    (voice / _PARTIAL).write_text("description: half writ")
    (voice / "notes.voice.yaml.bak").write_text("mine")  # not ours: stays
    for name in _LEFTOVERS:
        (tmp / "voices" / name).mkdir()
    config = {"openai": {"body_timeout": _BODY_TIMEOUT}}
    process = ServerProcess(tmp, config).start()
    yield process
    assert process.stop() == 0, process.log()


def _url(server: ServerProcess, path: str) -> str:
    return f"http://127.0.0.1:{server.http_port}{path}"


async def _post(server: ServerProcess, path: str, data: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(_url(server, path), data=data, headers=headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()


def test_leftovers_of_a_crash_are_removed_at_start(server: ServerProcess) -> None:
    voices = Path(server.config["voices_dir"])
    assert sorted(p.name for p in voices.iterdir()) == ["kept"]
    assert sorted(p.name for p in (voices / "kept").iterdir()) == [
        "notes.voice.yaml.bak",
        "voice.yaml",
    ]


_STALLED = [
    ("POST", "/v1/audio/speech", "application/json", b'{"input": "Hi'),
    ("PATCH", "/v1/audio/voices/kept", "application/json", b'{"descripti'),
    ("POST", "/v1/audio/voices", "application/json", b'{"name": "sl'),
    ("POST", "/v1/audio/voices", "multipart/form-data; boundary=b", b"--b\r\nContent-Dis"),
]


@pytest.mark.parametrize(("method", "path", "kind", "sent"), _STALLED)
async def test_a_body_that_never_finishes_gets_408_and_the_connection_closes(
    server: ServerProcess, method: str, path: str, kind: str, sent: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(sent) + 86}\r\n\r\n"
    )
    started = time.monotonic()
    writer.write(head.encode() + sent)
    await writer.drain()
    # Everyone else is served meanwhile.
    status, _ = await _post(server, "/v1/audio/speech", json.dumps(_SPEECH).encode())
    assert status == 200
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # to the end: the server closes
    closed_after = time.monotonic() - started
    writer.close()
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 408 "), answer
    assert b"Connection: close" in head_part, answer
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout" and error["type"] == "invalid_request_error"
    assert f"within {_BODY_TIMEOUT:g} s" in error["message"]
    assert closed_after >= _BODY_TIMEOUT * 0.9
    if path == "/v1/audio/speech":
        record("http", "stalled_body_closed_after_s", round(closed_after, 2))


async def test_integers_past_the_digit_limit_are_a_400(server: ServerProcess) -> None:
    body = b'{"input": "Hi.", "speed": ' + b"1" * 5000 + b"}"
    status, answer = await _post(server, "/v1/audio/speech", body)
    assert (status, answer["error"]["code"]) == (400, "invalid_request"), answer
    assert "longer than 4300 digits" in answer["error"]["message"]
    status, answer = await _post(server, "/v1/audio/voices", b'{"name": ' + b"9" * 5000 + b"}")
    assert status == 400 and "4300 digits" in answer["error"]["message"], answer


async def test_integers_past_the_digit_limit_over_wyoming(server: ServerProcess) -> None:
    data = b'{"text": "Hi.", "n": ' + b"7" * 5000 + b"}"
    header = json.dumps({"type": "synthesize", "data_length": len(data)}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(header + b"\n" + data)
    event = await asyncio.wait_for(async_read_event(reader), TIMEOUT)
    assert event is not None and event.type == "error", event
    assert event.data["code"] == "invalid-request"
    assert "4300 digits" in event.data["text"]
    # The event was read whole: the same connection speaks the next request.
    hello = b'{"text": "Hello."}'
    writer.write(b'{"type": "synthesize", "data_length": %d}\n%s' % (len(hello), hello))
    event = await asyncio.wait_for(async_read_event(reader), TIMEOUT)
    assert event is not None and event.type == "audio-start", event
    writer.close()
    # In the header line itself: an error event, then the connection is closed.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b'{"type": "describe", "data_length": ' + b"1" * 5000 + b"}\n")
    event = await asyncio.wait_for(async_read_event(reader), TIMEOUT)
    assert event is not None and event.type == "error" and "4300 digits" in event.data["text"]
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
    # As a speaker id: a clear error, not an engine failure.
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        await client.write_event(
            Synthesize(text="Hi.", voice=SynthesizeVoice(_JOE, speaker="1" * 5000)).event()
        )
        speech = await read_until(client, Speech(), "audio-stop", "error")
    assert [e.code for e in speech.errors] == ["invalid-request"], speech.errors


async def test_a_huge_voice_name_is_clipped_in_answers_and_in_the_log(
    server: ServerProcess,
) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, "Hello.", _HUGE_NAME)
    assert [e.code for e in speech.errors] == ["voice-not-found"]
    text = speech.errors[0].text
    assert len(text) < 500 and "(900000 characters)" in text, text[:600]
    body = json.dumps({**_SPEECH, "voice": _HUGE_NAME}).encode()
    status, answer = await _post(server, "/v1/audio/speech", body)
    assert (status, answer["error"]["code"]) == (404, "voice_not_found")
    assert len(answer["error"]["message"]) < 500
    log = server.log()
    assert log.count("(900000 characters)") >= 2, "the failures were not logged"
    assert "x" * 1000 not in log
    assert max(len(line) for line in log.splitlines()) < 2000


async def test_unexpected_failures_name_only_their_type(
    server: ServerProcess, reference_wav: Path
) -> None:
    """A voices folder that became a file: a server fault (500), its path never sent."""
    voices = Path(server.config["voices_dir"])
    aside = voices.with_name("voices-aside")
    voices.rename(aside)
    voices.write_text("not a folder")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                _url(server, "/v1/audio/voices"), data=_form("new", reference_wav.read_bytes())
            ) as response,
        ):
            status, text = response.status, await response.text()
    finally:
        voices.unlink()
        aside.rename(voices)
    assert status == 500, text
    error = json.loads(text)["error"]
    assert error["message"] == "internal error (FileExistsError); see the server log"
    assert str(voices.parent) not in text
    assert "FileExistsError" in server.log()

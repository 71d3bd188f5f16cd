"""``--uri stdio://``: this server as the stdio child of another, our own Wyoming upstream
engine, with real Wyoming events over the pipes in both directions.

The parent has no engine but the upstream, so every voice it lists and every sample it
sends came through the child. The child binds nothing (its HTTP API is off) and its
Piper also writes to stdout in the middle of each request, as chatty libraries do: the
server sends such writes to stderr (the parent's log), so the protocol stays intact.
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import soundfile
import yaml
from wyoming.client import AsyncTcpClient

from .helpers import (
    TIMEOUT,
    ServerProcess,
    assert_speech_like,
    describe,
    get_json,
    listening,
    post_speech,
    synthesize,
)

JOE = "en_US-joe-medium"
ANSWER = "The garage door is closed. All the lights are off. Good night."

CHATTY_CHILD = """
import os
from wyoming_polytts.__main__ import run
from wyoming_polytts.engines.piper.engine import PiperEngine

speak = PiperEngine.synthesize

def chatty(self, request):
    print("a stray print to stdout", flush=True)
    os.write(1, b"a stray write to fd 1\\n")
    yield from speak(self, request)

PiperEngine.synthesize = chatty
run()
"""
"""``python -m wyoming_polytts`` whose Piper writes to stdout before each sentence."""


def _parent_config(folder: Path, program: list[str]) -> dict[str, Any]:
    """The parent's engines: only ``program`` (this server) over stdio, with a config of
    its own in ``folder``."""
    child = folder / "child"
    child.mkdir()
    config = {
        "cache_dir": str(child / "cache"),
        "voices_dir": str(child / "voices"),
        "openai": {"enabled": False},
    }
    (child / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [*program, "--uri", "stdio://", "--config", str(child / "config.yaml")]
    return {"engines": {"wyoming": {"command": command}}}


async def _child_pid(parent: ServerProcess) -> int:
    detail = (await get_json(parent, "/health"))["engines"]["wyoming"]["detail"]
    assert detail["state"] == "up", detail
    return int(detail["pid"])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not _gone(pid):
        if time.monotonic() > deadline:
            psutil.Process(pid).kill()
            raise AssertionError(f"the child {pid} outlived its parent")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def parent(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    folder = Path(tmp_path_factory.mktemp("stdio"))
    server = ServerProcess(folder, _parent_config(folder, [sys.executable, "-c", CHATTY_CHILD]))
    yield server.start()
    child = await _child_pid(server)
    assert server.stop() == 0, server.log()
    assert _gone(child), "the child outlived the server"


async def test_describe_lists_the_childs_voice(parent: ServerProcess) -> None:
    voices = {voice.name: voice for voice in (await describe(parent.port)).tts[0].voices}
    assert list(voices) == [JOE]
    description = voices[JOE].description or ""
    assert voices[JOE].installed
    assert description.endswith("[piper] [wyoming]"), description  # the child's engine, ours
    assert listening(await _child_pid(parent)) == set()


async def test_wyoming_synthesis_through_the_child(parent: ServerProcess, transcriber) -> None:
    async with AsyncTcpClient("127.0.0.1", parent.port) as client:
        speech = await synthesize(client, ANSWER, JOE)
    assert not speech.errors, speech.errors
    assert speech.rate == 22050
    assert_speech_like(speech.samples, speech.rate, ANSWER)
    transcriber.assert_says(speech.samples, speech.rate, ANSWER)
    # The child's stray writes reached the parent's log through its stderr, and it never
    # lost step with the parent (that would have restarted it).
    log = parent.log()
    assert "a stray print to stdout" in log and "a stray write to fd 1" in log
    health = await get_json(parent, "/health")
    assert health["engines"]["wyoming"]["detail"]["restarts"] == 0


async def test_http_synthesis_through_the_child(parent: ServerProcess, transcriber) -> None:
    status, body = await post_speech(parent.base_url, ANSWER, JOE, "wav")
    assert status == 200, body
    samples, rate = soundfile.read(io.BytesIO(body), dtype="int16")
    assert rate == 22050
    assert_speech_like(samples, rate, ANSWER)
    transcriber.assert_says(samples, rate, ANSWER)


async def test_the_child_exits_when_its_stdin_closes(tmp_path: Path) -> None:
    """The parent dies hard (no chance to stop its child): the closed stdin ends the child."""
    config = _parent_config(tmp_path, [sys.executable, "-m", "wyoming_polytts"])
    parent = ServerProcess(tmp_path, config).start()
    try:
        child = await _child_pid(parent)
        assert not _gone(child)
        assert parent.process is not None
        parent.process.kill()
        parent.process.wait()
        await _wait_gone(child)
    finally:
        parent.stop()

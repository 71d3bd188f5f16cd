"""Voice uploads that lie, explode or break, a disk that fills up, and paths that escape.

The server runs with its voices folder on a real 1 MiB tmpfs mounted for this
module, so a full disk is a real ENOSPC. Uploads: files that claim one format
and hold another, a decompression bomb (minutes of input in a few kilobytes,
hours in under a megabyte), corrupt containers and empty files; mutated files
are fuzzed through the decoder. Paths: traversal in voice names, hand-made
voice.yaml files, links out of the voices folder, and URL voices that point at
loopback or private addresses must all be refused.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.client import AsyncTcpClient

from wyoming_polytts.errors import InvalidAudioError, PayloadTooLargeError
from wyoming_polytts.library.reference_audio import AudioLimits, prepare_reference

from .figures import record
from .helpers import ServerProcess, free_port, synthesize

_LIMITS = AudioLimits(rate=24_000, min_seconds=3.0, max_seconds=30.0, max_bytes=10 << 20)
_UNREADABLE = "not a readable audio file|holds no audio"
_DISK = "1m"
"""Size of the tmpfs the voices folder lives on."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = Path(tmp_path_factory.mktemp("uploads"))
    voices = tmp / "voices"
    voices.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={_DISK}", "tmpfs", str(voices)], check=True
    )
    try:
        config = {"voice_library": {"allow_url_voices": True, "url_timeout": 5.0}}
        process = ServerProcess(tmp, config).start()
        yield process
        assert process.stop() == 0, process.log()
        assert "Traceback" not in process.log(), process.log()
    finally:
        subprocess.run(["umount", "--lazy", str(voices)], check=True)


def _voices(server: ServerProcess) -> Path:
    return Path(server.config["voices_dir"])


def _form(name: str, audio: bytes, filename: str, content_type: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("name", name)
    form.add_field("file", audio, filename=filename, content_type=content_type)
    return form


async def _call(server: ServerProcess, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{server.http_port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, **kwargs) as response,
    ):
        return response.status, await response.json()


async def _register(server: ServerProcess, name: str, audio: bytes, **kw: str) -> tuple[int, Any]:
    form = _form(name, audio, kw.get("filename", "sample.wav"), kw.get("type", "audio/wav"))
    return await _call(server, "POST", "/v1/audio/voices", data=form)


def _encode(path: Path, fmt: str) -> bytes:
    samples, rate = soundfile.read(path, dtype="float32")
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format=fmt)
    return out.getvalue()


def _bomb(hours: float, rate: int = 8_000) -> bytes:
    """FLAC of a constant level: ``hours`` of audio in very few bytes."""
    out = io.BytesIO()
    minute = np.full(rate * 60, 0.25, dtype=np.float32)
    with soundfile.SoundFile(out, "w", rate, 1, format="FLAC", subtype="PCM_16") as file:
        for _ in range(int(hours * 60)):
            file.write(minute)
    return out.getvalue()


# --- audio uploads ----------------------------------------------------------


async def test_content_decides_not_the_name_and_bad_files_get_400(
    server: ServerProcess, reference_wav: Path
) -> None:
    flac = _encode(reference_wav, "FLAC")
    status, body = await _register(server, "flac-as-wav", flac, filename="a.wav")
    assert status == 201, body
    assert soundfile.info(_voices(server) / "flac-as-wav" / "reference.wav").format == "WAV"
    wav = reference_wav.read_bytes()
    cases = [
        (b"<html><body>not audio</body></html>" * 20, "a.mp3", _UNREADABLE),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "a.wav", _UNREADABLE),
        (b"", "a.wav", "empty"),
        (wav[:44], "a.wav", _UNREADABLE),
        (wav[:20] + b"\xff" * 24 + wav[44:], "a.wav", _UNREADABLE),
        (_bomb(hours=10), "a.flac", "too long"),
    ]
    for audio, filename, message in cases:
        status, body = await _register(server, "bad", audio, filename=filename)
        assert (status, body["error"]["code"]) == (400, "invalid_audio"), (filename, body)
        assert re.search(message, body["error"]["message"]), body
    assert sorted(p.name for p in _voices(server).iterdir()) == ["flac-as-wav"]
    assert (await _call(server, "DELETE", "/v1/audio/voices/flac-as-wav"))[0] == 200


def test_decompression_bomb_stops_at_the_limit_and_costs_little() -> None:
    bomb = _bomb(hours=10)
    with pytest.raises(InvalidAudioError, match="too long"):
        prepare_reference(bomb[:4096], _LIMITS)  # warm-up: PyAV loaded, and even 4 KiB is a bomb
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(InvalidAudioError, match="too long: more than 60 s"):
        prepare_reference(bomb, _LIMITS)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Ten hours at 24 kHz would be 3.5 GB of float32; decoding stops after 60 s (5.8 MB).
    assert peak < 32 << 20, f"decoding held {peak >> 20} MiB"
    record("uploads", "bomb_file_kib", round(len(bomb) / 1024))
    record("uploads", "bomb_hours", 10)
    record("uploads", "bomb_reject_ms", round(elapsed * 1000))
    record("uploads", "bomb_peak_python_mib", round(peak / (1 << 20), 1))


def _seed_files() -> list[bytes]:
    rate = 16_000
    t = np.arange(rate * 4) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    files = []
    for fmt, subtype in [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", None)]:
        out = io.BytesIO()
        soundfile.write(out, tone, rate, format=fmt, subtype=subtype)
        files.append(out.getvalue())
    return files


_SEEDS = _seed_files()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 12))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 4096))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        if not data:
            break
    return bytes(data)


@given(audio=_mutated())
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_mutated_files_only_get_client_errors(audio: bytes) -> None:
    try:
        samples = prepare_reference(audio, _LIMITS)
    except (InvalidAudioError, PayloadTooLargeError) as err:
        assert str(err)
        return
    assert samples.dtype == np.float32 and np.isfinite(samples).all()


# --- a full disk ----------------------------------------------------------------


async def test_a_full_disk_gives_507_and_loses_nothing(
    server: ServerProcess, reference_wav: Path
) -> None:
    voices = _voices(server)
    audio = reference_wav.read_bytes()
    assert (await _register(server, "kept", audio))[0] == 201
    kept = {p.name: p.read_bytes() for p in (voices / "kept").iterdir()}
    filler = voices / ".filler"
    free = _free_bytes(voices)
    filler.write_bytes(b"\0" * (free - 100 * 1024))  # room for a third of the recording
    try:
        status, body = await _register(server, "too-much", audio)
        assert status == 507, body
        assert body["error"]["code"] == "insufficient_storage"
        assert "disk holding the voice library is full" in body["error"]["message"]
        _fill(filler)  # not even voice.yaml fits now
        status, body = await _call(
            server, "PATCH", "/v1/audio/voices/kept", json={"description": "changed"}
        )
        assert (status, body["error"]["code"]) == (507, "insufficient_storage"), body
        assert sorted(p.name for p in voices.iterdir()) == [".filler", "kept"]  # no leftovers
        assert {p.name: p.read_bytes() for p in (voices / "kept").iterdir()} == kept
    finally:
        filler.unlink()
    status, body = await _call(server, "GET", "/v1/audio/voices/kept")
    assert status == 200 and body["available"], body
    assert (await _register(server, "fits-again", audio))[0] == 201
    for name in ("kept", "fits-again"):
        assert (await _call(server, "DELETE", f"/v1/audio/voices/{name}"))[0] == 200


def _free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def _fill(filler: Path) -> None:
    with filler.open("ab", buffering=0) as file:
        try:
            while file.write(b"\0" * 4096):
                pass
        except OSError:
            pass


# --- nothing outside the configured folders ------------------------------------


async def test_voice_names_cannot_traverse(server: ServerProcess, reference_wav: Path) -> None:
    audio = reference_wav.read_bytes()
    outside = _voices(server).parent
    before = sorted(p.name for p in outside.iterdir())
    for name in ["../escaped", "..", ".hidden", "a/b", "/tmp/x", "x" * 65, "voice\x00"]:
        status, body = await _register(server, name, audio)
        assert (status, body["error"]["code"]) == (400, "invalid_request"), (name, body)
    for path in ["..%2F..%2Fetc", "%2e%2e", ".hidden", "a%2Fb"]:
        for method, kwargs in [("GET", {}), ("PATCH", {"json": {}}), ("DELETE", {})]:
            url = f"/v1/audio/voices/{path}"
            status, body = await _call(server, method, url, **kwargs)
            assert status in (400, 404) and body["error"]["message"], (method, path, body)
    status, body = await _call(
        server, "POST", "/v1/audio/speech", json={"input": "Hi.", "voice": "../../etc/passwd"}
    )
    assert (status, body["error"]["code"]) == (404, "voice_not_found"), body
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, "Hi.", "../../etc/passwd")
    assert [e.code for e in speech.errors] == ["voice-not-found"]
    assert sorted(p.name for p in outside.iterdir()) == before
    assert list(_voices(server).iterdir()) == []


async def test_hand_made_voices_cannot_reach_outside(
    server: ServerProcess, reference_wav: Path, tmp_path: Path
) -> None:
    voices = _voices(server)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(reference_wav.read_bytes())
    (outside / "secret.txt").write_text("root-password: hunter2\n")
    (outside / "voice.yaml").write_text("description: outside\n")
    (outside / "reference.wav").write_bytes(reference_wav.read_bytes())
    _hand_made(voices / "dotdot", "audio: ../../outside/secret.wav\n")
    _hand_made(voices / "linked-audio", "description: x\n")
    (voices / "linked-audio" / "reference.wav").symlink_to(outside / "secret.wav")
    _hand_made(voices / "linked-meta", None)
    (voices / "linked-meta" / "voice.yaml").symlink_to(outside / "secret.txt")
    (voices / "linked-folder").symlink_to(outside, target_is_directory=True)
    try:
        reasons = {}
        for name in ("dotdot", "linked-audio", "linked-meta", "linked-folder"):
            status, body = await _call(server, "GET", f"/v1/audio/voices/{name}")
            assert status == 200 and body["available"] is False, body
            reasons[name] = body["error"]
        assert "file name in the voice folder" in reasons["dotdot"]
        assert "links outside" in reasons["linked-audio"]
        assert "links outside" in reasons["linked-meta"]
        assert "links outside the voices folder" in reasons["linked-folder"]
        status, listing = await _call(server, "GET", "/v1/audio/voices")
        assert "hunter2" not in str(listing)
        status, body = await _call(
            server, "PATCH", "/v1/audio/voices/linked-folder", json={"description": "changed"}
        )
        assert status == 400, body
        assert (outside / "voice.yaml").read_text() == "description: outside\n"
        for name in ("dotdot", "linked-audio", "linked-meta", "linked-folder"):
            assert (await _call(server, "DELETE", f"/v1/audio/voices/{name}"))[0] == 200
        assert sorted(p.name for p in outside.iterdir()) == [
            "reference.wav",
            "secret.txt",
            "secret.wav",
            "voice.yaml",
        ]
        assert (outside / "secret.txt").read_text() == "root-password: hunter2\n"
    finally:
        for entry in voices.iterdir():
            _remove(entry)
    assert list(voices.iterdir()) == []


def _hand_made(folder: Path, meta: str | None) -> None:
    folder.mkdir()
    if meta is not None:
        (folder / "voice.yaml").write_text(meta)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        for entry in path.iterdir():
            _remove(entry)
        path.rmdir()


@pytest.fixture
async def loopback_audio(reference_wav: Path) -> AsyncIterator[tuple[int, list[str]]]:
    """A web server on 127.0.0.1 serving a valid recording, and the paths it was asked for."""
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=reference_wav.read_bytes(), content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, hits
    await runner.cleanup()


async def test_url_voices_never_reach_loopback_or_private_hosts(
    server: ServerProcess, loopback_audio: tuple[int, list[str]]
) -> None:
    port, hits = loopback_audio
    urls = [
        f"http://127.0.0.1:{port}/a.wav",
        f"http://localhost:{port}/a.wav",
        f"http://127.1:{port}/a.wav",
        f"http://2130706433:{port}/a.wav",
        f"http://0.0.0.0:{port}/a.wav",
        f"http://[::1]:{port}/a.wav",
        f"http://[::ffff:127.0.0.1]:{port}/a.wav",
        f"http://[::127.0.0.1]:{port}/a.wav",
        f"http://[64:ff9b::7f00:1]:{port}/a.wav",
        "http://10.0.0.1/a.wav",
        "http://192.168.1.1/a.wav",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/a.wav",
        "file:///etc/passwd",
        f"ftp://127.0.0.1:{port}/a.wav",
    ]
    for url in urls:
        status, body = await _call(
            server, "POST", "/v1/audio/voices", json={"name": "fetched", "audio_url": url}
        )
        assert (status, body["error"]["code"]) == (400, "invalid_request"), (url, body)
        message = body["error"]["message"]
        assert "not a public address" in message or "only http" in message, (url, message)
    assert hits == []
    assert list(_voices(server).iterdir()) == []

"""Browser safety of the HTTP API, through the real server: media types (no CORS "simple
requests"), cross-site Origins, Host names (DNS rebinding), the voice management lock
without an API key, and Home Assistant ingress from a trusted proxy peer.

Tests can only reach the server from 127.0.0.1, so one server trusts that address as
its ingress proxy and another trusts a different one: the same requests, with and
without ``X-Ingress-Path``, show what the trust grants and to whom.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest

from openai_shim.settings import ShimSettings, is_loopback
from wyoming_polytts.config import parse_config

from .helpers import ServerProcess, assert_speech_like
from .test_voice_api import _form

KEY = "sk-browser-safety"
APP = "http://app.example"
"""An origin allowed by CORS."""
EVIL = "http://evil.example"
HA_HOST = "homeassistant.local:8123"
"""Host and origin a browser sends when it opens Home Assistant; ingress forwards both."""
INGRESS = {"X-Ingress-Path": "/api/hassio_ingress/0123456789abcdef", "Host": HA_HOST}
SPEECH = {"input": "The porch light is on.", "response_format": "pcm"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Loopback, no API key, voice management locked; trusts 127.0.0.1 as its ingress."""
    config = {
        "openai": {
            "open_voice_management": False,
            "trusted_proxies": ["127.0.0.1"],
            "allowed_hosts": ["tts.example"],
            "cors_origins": [APP],
        }
    }
    process = ServerProcess(Path(tmp_path_factory.mktemp("guarded")), config).start()
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """API keys, any Host; trusts an ingress proxy at another address than the tests'."""
    config = {
        "openai": {"api_keys": [KEY], "trusted_proxies": ["10.9.8.7"], "allowed_hosts": ["*"]}
    }
    process = ServerProcess(Path(tmp_path_factory.mktemp("keyed")), config).start()
    yield process
    assert process.stop() == 0, process.log()


async def _call(
    server: ServerProcess, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{server.http_port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, **kwargs) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()


def _voices(server: ServerProcess) -> list[str]:
    root = Path(server.config["voices_dir"])
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _code(body: Any) -> str:
    return body["error"]["code"]


async def test_only_json_and_forms_are_taken(guarded: ServerProcess) -> None:
    json_body = b'{"input": "The porch light is on.", "response_format": "pcm"}'
    for kind in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": kind} if kind else {}
        status, body = await _call(guarded, "POST", "/v1/audio/speech", headers, data=json_body)
        assert (status, _code(body)) == (415, "unsupported_media_type"), (kind, body)
        assert "application/json" in body["error"]["message"]
    plain = {**INGRESS, "Content-Type": "text/plain"}  # past the lock (see below)
    status, body = await _call(guarded, "POST", "/v1/audio/voices", plain, data=b"{}")
    assert status == 415 and "multipart/form-data" in body["error"]["message"], body
    status, body = await _call(guarded, "PATCH", "/v1/audio/voices/x", plain, data=b"{}")
    assert status == 415, body
    charset = {"Content-Type": "application/json; charset=utf-8"}
    status, pcm = await _call(guarded, "POST", "/v1/audio/speech", charset, data=json_body)
    assert status == 200
    assert_speech_like(np.frombuffer(pcm, "<i2"), 24_000, SPEECH["input"])


async def test_cross_site_origins_cannot_change_or_speak(
    guarded: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    evil = {"Origin": EVIL}
    for method, path, kwargs in [
        ("POST", "/v1/audio/speech", {"json": SPEECH}),
        ("POST", "/v1/audio/voices", {"data": _form("csrf", audio)}),
        ("PATCH", "/v1/audio/voices/csrf", {"json": {"description": "x"}}),
        ("DELETE", "/v1/audio/voices/csrf", {}),
    ]:
        for origin in (EVIL, "null", f"http://127.0.0.1:{guarded.http_port + 1}"):
            status, body = await _call(guarded, method, path, {"Origin": origin}, **kwargs)
            assert (status, _code(body)) == (403, "origin_not_allowed"), (method, origin, body)
    assert "openai.cors_origins" in body["error"]["message"]
    assert _voices(guarded) == []
    # Reading stays open to any page (CORS decides what a browser may read).
    status, body = await _call(guarded, "GET", "/v1/audio/voices", evil)
    assert status == 200 and body["voices"]
    # The server's own page, a configured origin, and clients without an Origin speak.
    for headers in ({"Origin": f"http://127.0.0.1:{guarded.http_port}"}, {"Origin": APP}, {}):
        status, pcm = await _call(guarded, "POST", "/v1/audio/speech", headers, json=SPEECH)
        assert status == 200, (headers, pcm)


async def test_hosts_that_are_not_this_server_are_refused(guarded: ServerProcess) -> None:
    port = guarded.http_port
    for host in ("evil.example", f"evil.example:{port}", "tts.example.evil", "127.0.0.1.evil"):
        for method, path, kwargs in [
            ("GET", "/v1/audio/voices", {}),
            ("GET", "/", {}),
            ("POST", "/v1/audio/speech", {"json": SPEECH}),
        ]:
            status, body = await _call(guarded, method, path, {"Host": host}, **kwargs)
            assert (status, _code(body)) == (403, "host_not_allowed"), (host, path, body)
    assert "openai.allowed_hosts" in body["error"]["message"]
    hostname = socket.gethostname()
    for host in (
        f"127.0.0.1:{port}",
        f"[::1]:{port}",
        f"localhost:{port}",
        f"{hostname}:{port}",
        f"{hostname.split('.')[0]}.local",
        "tts.example",
        f"TTS.Example.:{port}",
    ):
        status, _ = await _call(guarded, "GET", "/v1/audio/voices", {"Host": host})
        assert status == 200, host


async def test_any_host_when_configured(keyed: ServerProcess) -> None:
    status, _ = await _call(keyed, "GET", "/v1/audio/voices", {"Host": "evil.example"})
    assert status == 200


async def test_voice_management_without_a_key_is_locked_and_speech_stays_open(
    guarded: ServerProcess, reference_wav: Path
) -> None:
    audio = reference_wav.read_bytes()
    for method, path, kwargs in [
        ("POST", "/v1/audio/voices", {"data": _form("locked", audio)}),
        ("PATCH", "/v1/audio/voices/locked", {"json": {"description": "x"}}),
        ("DELETE", "/v1/audio/voices/locked", {}),
    ]:
        status, body = await _call(guarded, method, path, {}, **kwargs)
        assert (status, _code(body)) == (403, "voice_management_locked"), (method, body)
        assert "openai.api_keys" in body["error"]["message"]
    assert _voices(guarded) == []
    client = openai.OpenAI(base_url=guarded.base_url, api_key="unused", max_retries=0)
    with reference_wav.open("rb") as sample, pytest.raises(openai.PermissionDeniedError) as err:
        client.audio.voices.create(name="sdk", audio_sample=sample, consent="cons_local")
    assert "API key" in str(err.value)
    speech = client.audio.speech.create(
        model="tts-1", voice="alloy", input=SPEECH["input"], response_format="pcm"
    )
    assert_speech_like(np.frombuffer(speech.content, "<i2"), 24_000, SPEECH["input"])
    assert (await _call(guarded, "GET", "/v1/audio/voices", {}))[0] == 200


async def test_trusted_ingress_manages_voices_without_a_key(
    guarded: ServerProcess, reference_wav: Path
) -> None:
    """Home Assistant forwards the browser's Host and Origin (its own address) with
    X-Ingress-Path; from the trusted peer that passes every check."""
    audio = reference_wav.read_bytes()
    page = {**INGRESS, "Origin": f"http://{HA_HOST}"}
    status, body = await _call(guarded, "POST", "/v1/audio/voices", page, data=_form("ha", audio))
    assert status == 201, body
    status, body = await _call(
        guarded, "PATCH", "/v1/audio/voices/ha", page, json={"display_name": "From HA"}
    )
    assert (status, body["name"]) == (200, "From HA")
    # Without the header the same request is a stranger's: Host, Origin, then the lock.
    without = {"Origin": f"http://{HA_HOST}"}
    status, body = await _call(guarded, "DELETE", "/v1/audio/voices/ha", {"Host": HA_HOST})
    assert (status, _code(body)) == (403, "host_not_allowed")
    status, body = await _call(guarded, "DELETE", "/v1/audio/voices/ha", without)
    assert (status, _code(body)) == (403, "origin_not_allowed")
    status, body = await _call(guarded, "DELETE", "/v1/audio/voices/ha", {})
    assert (status, _code(body)) == (403, "voice_management_locked")
    assert _voices(guarded) == ["ha"]
    status, _ = await _call(guarded, "DELETE", "/v1/audio/voices/ha", page)
    assert status == 200
    assert _voices(guarded) == []


async def test_ingress_header_from_an_untrusted_peer_grants_nothing(
    keyed: ServerProcess, reference_wav: Path
) -> None:
    status, body = await _call(keyed, "POST", "/v1/audio/speech", INGRESS, json=SPEECH)
    assert (status, _code(body)) == (401, "invalid_api_key")
    form = _form("stranger", reference_wav.read_bytes())
    status, body = await _call(keyed, "POST", "/v1/audio/voices", INGRESS, data=form)
    assert status == 401
    page = {**INGRESS, "Origin": EVIL, "Authorization": f"Bearer {KEY}"}
    status, body = await _call(keyed, "POST", "/v1/audio/speech", page, json=SPEECH)
    assert (status, _code(body)) == (403, "origin_not_allowed")
    status, _ = await _call(
        keyed, "POST", "/v1/audio/speech", {"Authorization": f"Bearer {KEY}"}, json=SPEECH
    )
    assert status == 200
    assert _voices(keyed) == []


@pytest.mark.parametrize(
    ("host", "keys", "opened", "locked"),
    [
        ("127.0.0.1", [], None, False),
        ("::1", [], None, False),
        ("localhost", [], None, False),
        ("127.0.0.5", [], None, False),
        ("0.0.0.0", [], None, True),
        ("::", [], None, True),
        ("192.168.1.20", [], None, True),
        ("tts.example", [], None, True),
        ("0.0.0.0", [KEY], None, False),
        ("0.0.0.0", [], True, False),
        ("127.0.0.1", [], False, True),
        ("127.0.0.1", [KEY], False, False),
    ],
)
def test_when_voice_management_is_locked(
    tmp_path: Path, host: str, keys: list[str], opened: bool | None, locked: bool
) -> None:
    openai_section = {"host": host, "api_keys": keys, "open_voice_management": opened}
    settings = ShimSettings.from_config(parse_config({"openai": openai_section}, tmp_path))
    assert settings.lock_voice_management is locked
    assert is_loopback(host) is (host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"))

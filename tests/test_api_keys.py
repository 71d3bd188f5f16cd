"""API keys: voice management always needs one when keys are configured, and no key
(right or wrong) ever reaches the server's log, at debug level either."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from .helpers import ServerProcess, assert_speech_like
from .test_voice_api import _form

KEY = "sk-reliability-7f3c9a1e"
OTHER_KEY = "sk-second-key-42b8"
WRONG = "sk-wrong-d41d8cd98f"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = {"log_level": "DEBUG", "openai": {"api_keys": [KEY, OTHER_KEY]}}
    process = ServerProcess(Path(tmp_path_factory.mktemp("keys")), config).start(["--debug"])
    yield process
    assert process.stop() == 0, process.log()


async def _call(
    server: ServerProcess, method: str, path: str, key: str | None, **kwargs: Any
) -> tuple[int, bytes]:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"http://127.0.0.1:{server.http_port}{path}"
    async with (
        aiohttp.ClientSession(headers=auth) as session,
        session.request(method, url, **kwargs) as response,
    ):
        return response.status, await response.read()


def _voices(server: ServerProcess) -> list[str]:
    root = Path(server.config["voices_dir"])
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def test_voice_management_needs_a_key(keyed: ServerProcess, reference_wav: Path) -> None:
    audio = reference_wav.read_bytes()
    path = "/v1/audio/voices"
    for key in (None, WRONG, f"{KEY}x"):
        status, _ = await _call(keyed, "POST", path, key, data=_form("grandma", audio))
        assert status == 401
    assert _voices(keyed) == []

    status, body = await _call(keyed, "POST", path, KEY, data=_form("grandma", audio))
    assert status == 201, body
    changes = {"description": "changed"}
    for method, kwargs in (("PATCH", {"json": changes}), ("DELETE", {})):
        for key in (None, WRONG):
            status, _ = await _call(keyed, method, f"{path}/grandma", key, **kwargs)
            assert status == 401, method
    status, body = await _call(keyed, "GET", f"{path}/grandma", None)
    assert status == 200 and b'"description": "changed"' not in body
    assert _voices(keyed) == ["grandma"]

    status, _ = await _call(keyed, "PATCH", f"{path}/grandma", OTHER_KEY, json=changes)
    assert status == 200
    status, _ = await _call(keyed, "DELETE", f"{path}/grandma", KEY)
    assert status == 200
    assert _voices(keyed) == []


async def test_keys_never_reach_the_log(keyed: ServerProcess) -> None:
    speech = {"input": "The front door is locked.", "response_format": "pcm"}
    path = "/v1/audio/speech"
    status, pcm = await _call(keyed, "POST", path, KEY, json=speech)
    assert status == 200
    assert_speech_like(np.frombuffer(pcm, "<i2"), 24_000, speech["input"])
    assert (await _call(keyed, "POST", path, WRONG, json=speech))[0] == 401
    assert (await _call(keyed, "POST", path, None, json=speech))[0] == 401
    # Keys where no key belongs: in the URL, as a voice name (logged as not found).
    assert (await _call(keyed, "POST", f"{path}?api_key={KEY}", KEY, json=speech))[0] == 200
    # Masking knows only whole keys; the access log leaves out queries and headers.
    near_miss = KEY[:-1]
    headers = {"User-Agent": f"agent {near_miss}", "Referer": f"http://x/?k={near_miss}"}
    query = f"{path}?key={near_miss}&token={WRONG}"
    status, _ = await _call(keyed, "POST", query, KEY, json=speech, headers=headers)
    assert status == 200
    lost = {**speech, "voice": OTHER_KEY}
    status, body = await _call(keyed, "POST", path, KEY, json=lost)
    assert status == 404 and OTHER_KEY.encode() in body  # the client sees what it sent

    log = keyed.log()
    assert "DEBUG" in log, "the server was not logging at debug level"
    assert "unknown voice '***'" in log
    assert log.count('127.0.0.1 "POST /v1/audio/speech" 200 ') >= 3, "no access log lines"
    for secret in (KEY, OTHER_KEY, WRONG, KEY[3:15], near_miss[3:], "agent"):
        assert secret not in log

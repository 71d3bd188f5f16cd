"""The OpenAI app against its own OpenAPI document (schemathesis), and its HTTP limits.

Schemathesis reads ``/openapi.json`` from the real server and sends generated
requests, valid and invalid, to every operation: no answer may be a 5xx, every
answer must match the document, invalid requests must be refused, and every 4xx
must be OpenAI's error object. ``max_input_chars`` is small here, so generated
speech stays short. Then: deeply nested JSON, oversized bodies, and a client
that sends its headers too slowly.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from .figures import record
from .helpers import ServerProcess, get_json

_EXAMPLES = 20
"""Generated requests per operation and mode (valid, invalid)."""

_RESULTS: Counter[str] = Counter()

_HEADER_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = {"openai": {"max_input_chars": 40, "header_timeout": _HEADER_TIMEOUT}}
    process = ServerProcess(Path(tmp_path_factory.mktemp("schemathesis")), config).start()
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()
    record("openapi", "schemathesis_examples", sum(_RESULTS.values()))
    record("openapi", "schemathesis_operations", len(_RESULTS))
    record("openapi", "schemathesis_failures", 0)


@pytest.fixture(scope="module")
def api_schema(api: ServerProcess) -> Any:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{api.http_port}/openapi.json")
    schema.config.update(base_url=f"http://127.0.0.1:{api.http_port}")
    return schema


def _openai_error_shape(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx answer is ``{"error": {"message", "type", "param", "code"}}``."""
    if 400 <= response.status_code < 500:
        body = response.json()
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
        assert isinstance(error["message"], str) and error["message"], body
        assert error["type"] == "invalid_request_error", body
    return None


_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    _openai_error_shape,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_generated_requests(api_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case) -> None:
            case.call_and_validate(checks=_CHECKS, timeout=60)
            _RESULTS[f"{case.method} {case.path}"] += 1

        try:
            run()
        except Unsatisfiable:  # an operation without inputs has no invalid request
            assert mode is GenerationMode.NEGATIVE


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/audio/speech"),
        ("POST", "/v1/audio/voices"),
        ("PATCH", "/v1/audio/voices/anyone"),
    ],
)
async def test_deeply_nested_json_is_refused(api: ServerProcess, method: str, path: str) -> None:
    body = b'{"input": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    url = f"http://127.0.0.1:{api.http_port}{path}"
    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, headers=headers) as response,
    ):
        assert response.status == 400
        error = (await response.json())["error"]
    assert "deeper than 32 levels" in error["message"], error
    assert error["code"] == "invalid_request"


async def test_oversized_bodies_get_413(api: ServerProcess) -> None:
    base = f"http://127.0.0.1:{api.http_port}"
    async with aiohttp.ClientSession() as session:
        for method, path, size in [
            ("POST", "/v1/audio/speech", 2 << 20),
            ("PATCH", "/v1/audio/voices/anyone", 128 << 10),
        ]:
            body = b'{"input": "' + b"a" * size + b'"}'
            headers = {"Content-Type": "application/json"}
            async with session.request(method, base + path, data=body, headers=headers) as response:
                assert response.status == 413, await response.text()
                assert set((await response.json())["error"]) == {"message", "type", "param", "code"}


async def test_slow_headers_are_cut_off_and_others_are_served(api: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    started = time.monotonic()
    closed_after = None
    try:
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            writer.write(bytes([byte]))
            await writer.drain()
            if await _closed(reader, 0.25):
                closed_after = time.monotonic() - started
                break
            # Everyone else is served meanwhile.
            assert (await get_json(api, "/health"))["status"] in ("ok", "degraded")
    except ConnectionError:
        closed_after = time.monotonic() - started
    finally:
        writer.close()
    assert closed_after is not None, "the server waited for the slow headers"
    assert closed_after >= _HEADER_TIMEOUT * 0.9
    record("openapi", "slow_header_client_cut_after_s", round(closed_after, 1))


async def _closed(reader: asyncio.StreamReader, wait: float) -> bool:
    """Whether the server closed the connection (within ``wait`` seconds)."""
    try:
        return await asyncio.wait_for(reader.read(1), wait) == b""
    except TimeoutError:
        return False

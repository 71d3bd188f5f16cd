"""The periodic heap trim (``pool.heap_trim_interval``): glibc really gives freed pages
back, and a running server trims on its own and counts it in ``/metrics``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wyoming.client import AsyncTcpClient

from wyoming_polytts.config import parse_config
from wyoming_polytts.errors import ConfigError
from wyoming_polytts.pool.memory import can_trim_heap

from .helpers import TIMEOUT, ServerProcess, assert_speech_like, synthesize
from .test_metrics import _scrape, _value

pytestmark = pytest.mark.skipif(not can_trim_heap(), reason="malloc_trim is glibc's")

# Fill 128 MiB of malloc'd blocks, free all but the last (which keeps the heap's top in
# place, so free() alone cannot shrink the heap), then trim: RSS before and after, KiB.
_FRAGMENT = """
from wyoming_polytts.pool.memory import resident_memory, trim_heap
blocks = [bytearray(64 * 1024) for _ in range(2048)]
top = blocks.pop()
del blocks
before = resident_memory()
trim_heap()
print(before // 1024, resident_memory() // 1024)
"""


def test_trim_gives_freed_heap_pages_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENT], capture_output=True, text=True, check=True
    ).stdout
    before, after = (int(kib) for kib in out.split())
    assert before - after > 64 * 1024, f"resident {before} KiB -> {after} KiB after the trim"


def test_interval_must_be_positive_or_null() -> None:
    off = parse_config({"pool": {"heap_trim_interval": None}}, Path("."))
    assert off.settings.pool.heap_trim_interval is None
    with pytest.raises(ConfigError, match=r"pool\.heap_trim_interval"):
        parse_config({"pool": {"heap_trim_interval": 0}}, Path("."))


@pytest.fixture
def trimming(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, {"pool": {"heap_trim_interval": 0.2}}).start()
    yield process
    assert process.stop() == 0, process.log()


async def test_server_trims_while_serving(trimming: ServerProcess) -> None:
    text = "The heap is trimmed while the server speaks."
    async with AsyncTcpClient("127.0.0.1", trimming.port) as client:
        speech = await synthesize(client, text)
    assert_speech_like(speech.samples, speech.rate, text)
    deadline = time.monotonic() + TIMEOUT
    while True:
        _, samples = await _scrape(trimming)
        trims = _value(samples, "polytts_heap_trims_total")
        if trims >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert trims >= 2
    assert ("polytts_heap_trimmed_bytes_total", frozenset()) in samples
    assert "Traceback" not in trimming.log()

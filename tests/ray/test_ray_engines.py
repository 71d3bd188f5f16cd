"""Engines on Ray: Piper (two replicas) and Kokoro pinned to the second node, and a Piper
that idles to zero replicas, behind one server. Real Wyoming and OpenAI clients; the
audio is decoded and checked, Piper's transcribed back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import openai
import psutil
import pytest
from wyoming.client import AsyncTcpClient

from bench.ray_cluster import LocalCluster
from bench.server_figures import scrape

from ..helpers import (
    TIMEOUT,
    ServerProcess,
    assert_speech_like,
    describe,
    get_json,
    synthesize,
    synthesize_stream,
)
from .conftest import WAIT, engine_health, node_of, on_ray, replica_pids, wait_for

JOE = "en_US-joe-medium"
ANSWER = "The garage door is closed. All the lights are off. Good night."
JAPANESE = "こんにちは、今日はいい天気ですね。"
NAMESPACE = "engines"
"""The server's Ray namespace: its applications are engines-piper, engines-kokoro..."""


@pytest.fixture(scope="module")
def server(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    engines = {
        "piper": on_ray(replicas=2, max_ongoing_requests=1),
        "kokoro": on_ray(),
        "piper-idle": {**on_ray(), "idle_unload_after": 1.0},
    }
    config = {"ray": {"address": cluster.address, "namespace": NAMESPACE}, "engines": engines}
    process = ServerProcess(tmp_path_factory.mktemp("ray-engines"), config).start()
    yield process
    assert process.stop() == 0, process.log()
    deadline = time.monotonic() + WAIT  # deleted at shutdown: their processes end
    while replica_pids(cluster, f"{NAMESPACE}-piper"):
        assert time.monotonic() < deadline, "replicas left behind at shutdown"
        time.sleep(0.2)


async def _voices(server: ServerProcess) -> dict[str, Any]:
    listed = await get_json(server, "/v1/audio/voices")
    return {voice["id"]: voice for voice in listed["voices"]}


async def test_remote_voices_are_listed(server: ServerProcess) -> None:
    names = {voice.name for voice in (await describe(server.port)).tts[0].voices}
    assert {f"piper:{JOE}", "jf_alpha", "jm_kumo"} <= names
    listed = await _voices(server)
    assert listed["jf_alpha"]["engine"] == "kokoro"
    assert listed["jf_alpha"]["languages"] == ["ja"]


async def test_replicas_run_on_the_second_node(
    server: ServerProcess, cluster: LocalCluster
) -> None:
    for app, replicas in ((f"{NAMESPACE}-piper", 2), (f"{NAMESPACE}-kokoro", 1)):
        pids = replica_pids(cluster, app)
        assert len(pids) == replicas, app
        assert {node_of(cluster, pid) for pid in pids} == {1}, app
    piper = await engine_health(server, "piper")
    assert piper["state"] == "loaded"
    assert piper["concurrency"] == 2  # two replicas, one sentence each
    assert piper["replicas"] == {"RUNNING": 2}
    assert piper["detail"]["ok"] and piper["detail"]["status"] == "HEALTHY"
    assert piper["detail"]["deployment"] == f"{NAMESPACE}-piper"
    metrics = await scrape(server.http_port)
    assert metrics["polytts_engine_replicas{engine=piper,state=RUNNING}"] == 2


async def test_wyoming_streams_through_a_replica(server: ServerProcess, transcriber) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, ANSWER, f"piper:{JOE}")
        words = [f"{word} " for word in ANSWER.split(" ")]
        streamed, _ = await synthesize_stream(client, words, f"piper:{JOE}")
    for each in (speech, streamed):
        assert not each.errors, each.errors
        assert each.rate == 22050
        assert sum(1 for e in each.events if e.type == "audio-chunk") > 1
        transcriber.assert_says(each.samples, each.rate, ANSWER, max_wer=0.2)


async def test_openai_streams_kokoro_piece_by_piece(server: ServerProcess) -> None:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="-", max_retries=0)
    pieces = []
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="jf_alpha", input=f"{JAPANESE}{JAPANESE}", response_format="pcm"
    ) as response:
        async for piece in response.iter_bytes():
            pieces.append(piece)
    samples = np.frombuffer(b"".join(pieces), dtype="<i2")
    assert len(pieces) > 1
    assert_speech_like(samples, 24000, f"{JAPANESE}{JAPANESE}")


async def test_two_replicas_serve_eight_clients(
    server: ServerProcess, cluster: LocalCluster
) -> None:
    pids = replica_pids(cluster, f"{NAMESPACE}-piper")
    before = [sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids]

    async def one() -> None:
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            speech = await synthesize(client, ANSWER, f"piper:{JOE}")
        assert not speech.errors, speech.errors
        assert_speech_like(speech.samples, speech.rate, ANSWER)

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(8))), TIMEOUT)
    after = [sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids]
    assert all(b > a for a, b in zip(before, after, strict=True)), "a replica did no work"


async def test_idle_engine_scales_to_zero_and_back(
    server: ServerProcess, cluster: LocalCluster
) -> None:
    app = f"{NAMESPACE}-piper-idle"

    async def scaled_down() -> bool:
        health = await engine_health(server, "piper-idle")
        return (
            health["state"] == "unloaded"
            and not health["replicas"]
            and not replica_pids(cluster, app)
        )

    await wait_for("idle unload", scaled_down)
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, ANSWER, f"piper-idle:{JOE}")  # loads it again
    assert not speech.errors, speech.errors
    assert_speech_like(speech.samples, speech.rate, ANSWER)
    metrics = await scrape(server.http_port)
    assert metrics["polytts_engine_loads_total{engine=piper-idle,outcome=loaded}"] >= 2
    assert metrics["polytts_engine_unloads_total{engine=piper-idle,reason=idle}"] >= 1
    await wait_for("idle unload after the request", scaled_down)

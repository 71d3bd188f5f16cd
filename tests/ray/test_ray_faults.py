"""Engines on Ray when things go wrong, and cloning there: a replica killed in the middle
of a request, a request whose client leaves, a load that fails, and a library voice
spoken by ZipVoice in a replica.

The Wyoming upstream engine runs in a replica here, relaying a scripted server (see
``scripted_upstream.py``) whose endless answer keeps a call under way for as long as
the test needs; it takes one sentence at a time, so whatever holds its only slot
holds the engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
import soundfile
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

from bench.ray_cluster import LocalCluster
from wyoming_polytts.gpu_check.recording import TRANSCRIPT

from ..helpers import (
    TIMEOUT,
    ServerProcess,
    Speech,
    assert_speech_like,
    get_json,
    read_until,
    synthesize,
)
from .conftest import engine_health, on_ray, replica_pids, wait_for
from .scripted_upstream import VOICE, ScriptedUpstream

NAMESPACE = "faults"
SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    scripted = await ScriptedUpstream().start()
    yield scripted
    await scripted.stop()


@pytest.fixture(scope="module")
async def server(
    cluster: LocalCluster,
    upstream: ScriptedUpstream,
    tiny_zipvoice: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServerProcess]:
    """The server, started off the event loop (the scripted upstream answers on it)."""
    engines = {
        "wyoming": {
            **on_ray(max_ongoing_requests=1),
            "uri": upstream.uri,
            "sample_rate": 16000,
        },
        "zipvoice": {**on_ray(), "model_dir": str(tiny_zipvoice), "int8": False},
        # Its voices are listed on the node; its load fails there (no such model).
        "kokoro": {**on_ray(), "model": "/nonexistent/kokoro.onnx", "preload": False},
        # No node offers box_z: nothing can place it, which start-up reports at once.
        "piper": on_ray(resources={"box_z": 1}),
    }
    config = {"ray": {"address": cluster.address, "namespace": NAMESPACE}, "engines": engines}
    process = ServerProcess(tmp_path_factory.mktemp("ray-faults"), config)
    await asyncio.to_thread(process.start)

    async def upstream_voice_listed() -> bool:
        voices = (await get_json(process, "/v1/audio/voices"))["voices"]
        return any(voice["id"] == VOICE for voice in voices)

    await wait_for("the upstream's voice, listed by its replica", upstream_voice_listed)
    yield process
    assert await asyncio.to_thread(process.stop) == 0, process.log()


async def _start_endless(client: AsyncTcpClient, upstream: ScriptedUpstream) -> Speech:
    """Ask for an answer that never ends; return once its audio flows."""
    upstream.reset()
    speech = Speech()
    await client.write_event(
        Synthesize(text="Speak forever.", voice=SynthesizeVoice(VOICE)).event()
    )
    await read_until(client, speech, "audio-chunk")
    assert upstream.endless.is_set()
    return speech


async def test_a_client_that_leaves_frees_the_replica(
    server: ServerProcess, upstream: ScriptedUpstream
) -> None:
    assert (await engine_health(server, "wyoming"))["concurrency"] == 1
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        await _start_endless(client, upstream)
    # The call was cancelled in the replica: its engine closed the upstream connection.
    await asyncio.wait_for(upstream.left.wait(), TIMEOUT)
    async with AsyncTcpClient("127.0.0.1", server.port) as client:  # the only slot is free
        speech = await asyncio.wait_for(synthesize(client, "Hello.", VOICE), TIMEOUT)
    assert not speech.errors, speech.errors
    assert speech.rate == 16000 and speech.duration == pytest.approx(0.5, abs=0.05)


async def test_a_killed_replica_fails_its_request_and_comes_back(
    server: ServerProcess, upstream: ScriptedUpstream, cluster: LocalCluster
) -> None:
    app = f"{NAMESPACE}-wyoming"
    (pid,) = replica_pids(cluster, app)
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await _start_endless(client, upstream)
        os.kill(pid, signal.SIGKILL)
        await read_until(client, speech, "error")
    (error,) = speech.errors
    assert error.code == "synthesis-failed"
    assert "engine 'wyoming': its Ray replica died during the request" in error.text

    async with AsyncTcpClient("127.0.0.1", server.port) as client:  # Serve starts another
        after = await asyncio.wait_for(synthesize(client, "Hello.", VOICE), TIMEOUT)
    assert not after.errors, after.errors
    assert after.duration == pytest.approx(0.5, abs=0.05)
    (new_pid,) = replica_pids(cluster, app)
    assert new_pid != pid

    async def running_again() -> bool:
        health = await engine_health(server, "wyoming")
        return health["replicas"] == {"RUNNING": 1} and health["detail"]["ok"]

    await wait_for("the new replica in /health", running_again)


async def test_a_load_that_fails_on_ray_reaches_the_client(
    server: ServerProcess, cluster: LocalCluster
) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, "こんにちは。", "jf_alpha")
    (error,) = speech.errors
    assert error.code == "engine-unavailable"
    assert "engine 'kokoro' failed to start on Ray" in error.text
    assert "/nonexistent/kokoro.onnx" in error.text
    health = await engine_health(server, "kokoro")
    assert health["state"] == "failed"

    async def deleted() -> bool:  # the failed application is deleted, its replica ends
        return not replica_pids(cluster, f"{NAMESPACE}-kokoro")

    await wait_for("the failed application deleted", deleted)


async def test_a_placement_no_node_can_take_is_reported(
    server: ServerProcess, cluster: LocalCluster
) -> None:
    health = await get_json(server, "/health")
    piper = health["engines"]["piper"]
    nowhere = f"no node of the Ray cluster at {cluster.address} offers CPU 1, box_z 1"
    assert piper["error"] == nowhere  # failed at start (and retried on a request later)
    assert not piper["detail"]["ok"] and piper["detail"]["problem"] == nowhere
    assert health["status"] == "degraded"


async def test_a_library_voice_is_cloned_in_a_replica(
    server: ServerProcess, reference_wav: Path
) -> None:
    sdk = openai.OpenAI(base_url=server.base_url, api_key="-", max_retries=0, timeout=TIMEOUT)
    with reference_wav.open("rb") as sample:
        sdk.audio.voices.create(
            name="grandpa",
            audio_sample=sample,
            consent="cons_local",
            extra_body={"transcript": TRANSCRIPT},
        )

    async def listed() -> bool:
        voices = sdk.get("/audio/voices", cast_to=object)["voices"]  # type: ignore[index]
        return any(v["id"] == "grandpa" and v["engine"] == "zipvoice" for v in voices)

    await wait_for("the new voice listed by the replica's node", listed)
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, SENTENCE, "grandpa")
    assert not speech.errors, speech.errors
    assert speech.rate == 24000
    assert_speech_like(speech.samples, speech.rate, SENTENCE)

    # The recording reached the node by content, kept under its hash.
    folder = server.log_path.parent
    recording = (folder / "voices" / "grandpa" / "reference.wav").read_bytes()
    digest = hashlib.sha256(recording).hexdigest()
    kept = folder / "cache" / "ray-voices" / digest / "reference.wav"
    assert kept.read_bytes() == recording
    assert soundfile.info(kept).samplerate == 24000

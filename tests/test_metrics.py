"""``GET /metrics``: Prometheus text that prometheus-client's own parser reads, and counts
that move with real requests through both front doors."""

from __future__ import annotations

import aiohttp
import openai
from prometheus_client.parser import text_string_to_metric_families
from wyoming.client import AsyncTcpClient

from wyoming_polytts.pool.metrics import Metrics

from .helpers import TIMEOUT, ServerProcess, assert_speech_like, synthesize, synthesize_stream

TEXT = "The front door is locked."

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(server: ServerProcess) -> tuple[str, Samples]:
    """The content type and every sample, keyed by name and labels."""
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
        content_type = response.headers["Content-Type"]
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return content_type, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_parse_and_count_requests_of_both_front_doors(
    server: ServerProcess,
) -> None:
    content_type, before = await _scrape(server)
    assert content_type.startswith("text/plain; version=0.0.4")

    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        speech = await synthesize(client, TEXT)
        empty, _ = await synthesize_stream(client, [])
    assert_speech_like(speech.samples, speech.rate, TEXT)
    assert [error.code for error in empty.errors] == ["invalid-text"]
    api = openai.AsyncOpenAI(base_url=server.base_url, api_key="-", timeout=TIMEOUT)
    audio = await api.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
    assert audio.content

    _, after = await _scrape(server)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    piper = {"engine": "piper"}
    assert moved("polytts_requests_total", **piper, front_door="wyoming", outcome="ok") == 1
    assert moved("polytts_requests_total", **piper, front_door="openai", outcome="ok") == 1
    invalid = {"front_door": "wyoming", "outcome": "invalid-text"}
    assert moved("polytts_requests_total", **piper, **invalid) == 1
    for door in ("wyoming", "openai"):
        assert moved("polytts_time_to_first_audio_seconds_count", **piper, front_door=door) == 1
    assert moved("polytts_real_time_factor_count", **piper) == 2  # one sentence each
    rtf = moved("polytts_real_time_factor_sum", **piper)
    assert 0 < rtf < 100, "seconds of work per second of audio"

    assert _value(after, "polytts_engine_state", **piper, state="loaded") == 1
    assert _value(after, "polytts_engine_state", **piper, state="unloaded") == 0
    assert _value(after, "polytts_engine_memory_bytes", **piper) > 0
    assert ("polytts_queue_depth", frozenset(piper.items())) in after
    assert _value(after, "polytts_active_requests", **piper) == 0
    assert _value(after, "polytts_engine_loads_total", **piper, outcome="loaded") == 1


def test_each_pool_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.request("piper", "wyoming").finish("ok")
    labels = {"engine": "piper", "front_door": "wyoming", "outcome": "ok"}
    assert first.registry.get_sample_value("polytts_requests_total", labels) == 1
    assert second.registry.get_sample_value("polytts_requests_total", labels) is None

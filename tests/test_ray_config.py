"""Placing engines on Ray, as far as it goes without a cluster: the options are checked
and name the key, and the proxy carries its engine class's facts. Everything that
needs a cluster is in tests/ray (run inside a network namespace of its own)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from wyoming_polytts.config import parse_config
from wyoming_polytts.engines import create_engines
from wyoming_polytts.engines.base import EngineContext
from wyoming_polytts.engines.kokoro.engine import KokoroEngine
from wyoming_polytts.errors import ConfigError

ADDRESS = {"address": "127.0.0.1:6379"}


def _config(engines: dict[str, Any], ray: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ray": ADDRESS if ray is None else ray, "engines": engines}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _config({"piper": {"placement": "ray"}}, ray={}),
            "engines.piper.placement: ray needs the address of a cluster in ray.address",
        ),
        (
            _config({"piper": {"placement": "cloud"}}),
            "engines.piper.placement: expected one of 'local', 'ray'",
        ),
        (_config({}, ray={"address": "head"}), "ray.address: expected host:port of the head"),
        (_config({}, ray={"address": "head:99999"}), "ray.address: expected host:port"),
        (
            _config({}, ray={**ADDRESS, "namespace": "a b"}),
            "ray.namespace: expected letters, digits, - and _",
        ),
        (
            _config({"piper": {"placement": "ray", "ray": {"num_replicas": 0}}}),
            "engines.piper.ray.num_replicas: expected 1 or more",
        ),
        (
            _config(
                {
                    "piper-b": {
                        "placement": "ray",
                        "ray": {"num_replicas": 2, "autoscaling": {"max_replicas": 3}},
                    }
                }
            ),
            "engines.piper-b.ray: give num_replicas or autoscaling, not both",
        ),
        (
            _config({"piper": {"placement": "ray", "ray": {"autoscaling": {"min_replicas": 0}}}}),
            "engines.piper.ray.autoscaling.min_replicas: expected 1 or more",
        ),
        (
            _config(
                {
                    "kokoro": {
                        "placement": "ray",
                        "ray": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}},
                    }
                }
            ),
            "engines.kokoro.ray.autoscaling.max_replicas: expected min_replicas or more",
        ),
        (
            _config({"piper": {"placement": "ray", "ray": {"resources": {"box_b": -1}}}}),
            "engines.piper.ray.resources.box_b: expected 0 or more",
        ),
        (
            _config({"piper": {"placement": "ray", "ray": {"max_ongoing_requests": 0}}}),
            "engines.piper.ray.max_ongoing_requests: expected 1 or more",
        ),
        (
            _config({"piper": {"placement": "ray", "ray": {"num_gpus": "half"}}}),
            "engines.piper.ray.num_gpus: expected a number",
        ),
        (
            _config({"piper": {"placement": "ray", "ray": {"replicas": 2}}}),
            "engines.piper.ray.replicas: unknown key",
        ),
    ],
)
def test_bad_ray_options_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_config(data, Path("."))


def test_a_disabled_engine_needs_no_cluster() -> None:
    config = parse_config(_config({"kokoro": {"enabled": False, "placement": "ray"}}, {}), Path())
    assert not config.engine_options["kokoro"].enabled


def test_the_proxy_speaks_for_its_engine_class(tmp_path: Path) -> None:
    """Built without reaching the cluster: it joins on first use (prepare or load)."""
    scaling = {"autoscaling": {"max_replicas": 3}, "max_ongoing_requests": 2}
    section = {"placement": "ray", "ray": scaling}
    config = parse_config(_config({"kokoro": section}), tmp_path)
    context = EngineContext(cache_dir=tmp_path, voices_dir=tmp_path, threads=1, base_dir=tmp_path)
    (engine,) = create_engines(config.engine_options, context, config.settings.ray).values()
    assert not isinstance(engine, KokoroEngine)
    assert engine.name == KokoroEngine.name
    assert engine.capabilities == KokoroEngine.capabilities
    assert engine.concurrency == 3 * 2  # replicas x sentences each takes
    assert not engine.pausable  # a replica takes turns itself
    assert engine.memory_usage() == 0
    assert engine.replicas() == {}
    assert engine.health() == {
        "ok": True,
        "deployment": "polytts-kokoro",
        "status": "not deployed",
        "replicas": {},
    }

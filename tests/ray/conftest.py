"""The Ray tests' cluster: a head and a second node (custom resource ``box_b``) on this
machine, started once per run.

Ray binds every interface it finds, so these tests run only inside a network
namespace that has nothing but loopback, where the cluster, the servers and their
clients all live (``make test`` runs them so: ``unshare --net sh -c 'ip link set
lo up && pytest tests/ray'``); the plain ``pytest`` run leaves this folder out
(``norecursedirs``). Anywhere else they refuse to start instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from bench.ray_cluster import LocalCluster, loopback_only

from ..helpers import ServerProcess, get_json

BOX_B = {"box_b": 1.0}
"""What pins a replica to the second node (the head has none of it)."""

WAIT = 120.0
"""Seconds a test waits for the cluster to reach a state it asked for."""


def pytest_configure(config: pytest.Config) -> None:
    if not loopback_only():
        raise pytest.UsageError(
            "tests/ray start a Ray cluster, which binds every interface: run them in a "
            "network namespace with only loopback, e.g. unshare --net sh -c "
            "'ip link set lo up && pytest tests/ray' (as make test does)"
        )


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(node_resources={"box_b": 8.0}) as local:
        yield local


def on_ray(replicas: int = 1, **ray: Any) -> dict[str, Any]:
    """The options of an engine section placed on the second node."""
    return {
        "placement": "ray",
        "ray": {"num_replicas": replicas, "num_cpus": 1, "resources": BOX_B, **ray},
    }


def replica_pids(cluster: LocalCluster, app: str) -> list[int]:
    """Processes of the Serve application ``app``'s replicas on ``cluster`` (by their
    process title, in the sessions of its nodes)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if f"ServeReplica:{app}:" in cmdline and node_of(cluster, process.pid) is not None:
            found.append(process.pid)
    return found


def node_of(cluster: LocalCluster, pid: int) -> int | None:
    """Which node of ``cluster`` runs process ``pid`` (0: the head, 1: the second); None
    for a process of none of them."""
    sessions = [node.process.pid for node in cluster.nodes]
    try:
        return sessions.index(os.getsid(pid))
    except (OSError, ValueError):
        return None


async def engine_health(server: ServerProcess, engine: str) -> dict[str, Any]:
    health: dict[str, Any] = await get_json(server, "/health")
    return dict(health["engines"][engine])


async def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll the coroutine function ``check`` until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.2)

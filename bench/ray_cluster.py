"""A Ray cluster of two nodes on this machine, for the Ray tests and the Ray benchmark.

The head and a second node are started with ``ray start --block``, each in a session
of its own, and stopped by that session: a ``SIGTERM`` to the process group first,
then ``SIGKILL`` to whatever of the session is left (Ray's workers leave the group
but not the session). Never ``ray stop``, which would stop every cluster of the
machine. Ray binds every interface it finds, so the cluster must run inside a
network namespace that has only loopback (:func:`loopback_only`), with the server
and the clients in the same one: ``unshare --net sh -c 'ip link set lo up && ...'``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import psutil

from .server_process import free_port

HOST = "127.0.0.1"

_START_TIMEOUT = 90.0
"""Seconds a node may take to report that its Ray runtime started."""

_STOP_WAIT = 5.0
"""Seconds a node may take to exit after SIGTERM before its session is killed."""

_STARTED = "Ray runtime started"


def loopback_only() -> bool:
    """Whether this process's network namespace has no interface but loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


class RayNode:
    """One ``ray start --block`` process (its session holds the node's processes)."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_started(self, deadline: float) -> None:
        while _STARTED not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray node did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        session = self.process.pid
        if self.process.poll() is None:
            os.killpg(session, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(_STOP_WAIT)
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == session:
                    process.kill()
            except (ProcessLookupError, psutil.Error):
                continue
        self.process.wait()


class LocalCluster:
    """A head and a second node on 127.0.0.1, with custom resources of their own."""

    def __init__(
        self,
        head_resources: dict[str, float] | None = None,
        node_resources: dict[str, float] | None = None,
        cpus: int = 8,
    ) -> None:
        """``cpus``: logical CPUs each node offers (replicas reserve them)."""
        self.head_resources = head_resources or {}
        self.node_resources = node_resources or {}
        self.cpus = cpus
        self.port = free_port()
        # Short: Ray's Unix sockets live below it, and their paths may not pass 107 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.nodes: list[RayNode] = []

    @property
    def address(self) -> str:
        """The head's address, as the ``ray.address`` setting takes it."""
        return f"{HOST}:{self.port}"

    def start(self) -> Self:
        """Start both nodes and return once each reports its runtime started."""
        if not loopback_only():
            raise RuntimeError(
                "a Ray cluster binds every interface: run inside a network namespace with "
                "only loopback (unshare --net sh -c 'ip link set lo up && ...')"
            )
        ray = str(Path(sys.executable).parent / "ray")
        common = ["--block", "--node-ip-address", HOST, "--num-cpus", str(self.cpus)]
        common += ["--disable-usage-stats"]
        head = [ray, "start", "--head", "--port", str(self.port), "--include-dashboard=false"]
        head += ["--temp-dir", str(self.folder), *common]
        head += ["--resources", json.dumps(self.head_resources)]
        node = [ray, "start", "--address", self.address, *common]
        node += ["--resources", json.dumps(self.node_resources)]
        env = {**os.environ, "PYTHONPATH": _python_path(), "RAY_USAGE_STATS_ENABLED": "0"}
        deadline = time.monotonic() + _START_TIMEOUT
        try:
            for argv, name in ((head, "head"), (node, "node")):
                self.nodes.append(RayNode(argv, self.folder / f"{name}.log", env))
                self.nodes[-1].wait_started(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the second node, then the head, and everything they started."""
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _python_path() -> str:
    """This checkout first, so that replicas run the code under test."""
    here = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{rest}" if rest else here

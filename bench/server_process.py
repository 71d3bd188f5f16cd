"""Servers under test and under benchmark: subprocesses on free loopback ports, ready once
they answer.

:class:`WyomingProcess` runs any Wyoming server (wyoming-piper too) and counts it ready
when it answers ``describe``. :class:`ServerProcess` is ours, ``python -m
wyoming_polytts``, with both front doors on free loopback ports whatever its
configuration says (a config written for it, a config file or the add-on's options
file); it is ready when ``describe`` is answered and, with the HTTP API on, ``/health``
says the engines to preload have loaded. The tests and the benchmark both start servers
only through these.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import aiohttp
import yaml

from .server_figures import get_json
from .wyoming_client import HOST, describe

READY_TIMEOUT = 180.0
"""Seconds a server may take to become ready (engines that load slowly included)."""

_POLL = 0.1

_STOP_WAIT = 20.0
"""Seconds a server may take to exit after SIGTERM before it is killed."""


def free_port() -> int:
    """A TCP port nothing listens on now, on loopback."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class WyomingProcess:
    """One Wyoming server process: started, waited for, measured by pid, stopped."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path) -> None:
        """``argv`` makes it listen on ``tcp://127.0.0.1:<port>``; its output goes to
        ``log_path``."""
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def spawn(
        self, extra_args: list[str] | None = None, *, file_limit: tuple[int, int] | None = None
    ) -> None:
        """Start the process without waiting for it; ``file_limit`` sets its (soft, hard)
        limit on open files."""

        def limit_files() -> None:
            if file_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, file_limit)

        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.argv, *(extra_args or [])],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=limit_files,
            )

    def start(
        self, extra_args: list[str] | None = None, *, file_limit: tuple[int, int] | None = None
    ) -> Self:
        """Start the process and block until it is ready (stopped again if it never is).

        Callable from inside a running event loop: the wait runs on a loop of its own.
        """
        self.spawn(extra_args, file_limit=file_limit)
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as waiter:
                waiter.submit(asyncio.run, self.wait_ready()).result()
        except BaseException:
            self.stop()
            raise
        return self

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the server is ready (see :meth:`answers`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None, "not started"
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log()[-3000:]}")
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), _POLL)):
                    if await self.answers():
                        return
            except (OSError, aiohttp.ClientError, TimeoutError):
                pass  # not listening yet
            await asyncio.sleep(_POLL)
        raise TimeoutError(f"{self.name} not ready after {timeout:g} s:\n{self.log()[-3000:]}")

    async def answers(self) -> bool:
        """Whether the server is ready now: it answers ``describe``."""
        await describe(self.port)
        return True

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM (SIGKILL after a while); the exit status."""
        assert self.process is not None, "not started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class HttpProcess(WyomingProcess):
    """A server of the OpenAI-compatible speech API, ready once ``GET ready_path`` answers."""

    def __init__(
        self, name: str, argv: list[str], port: int, log_path: Path, ready_path: str
    ) -> None:
        super().__init__(name, argv, port, log_path)
        self.ready_path = ready_path

    @property
    def base_url(self) -> str:
        """Base URL of its API, as the openai SDK takes it."""
        return f"http://{HOST}:{self.port}/v1"

    async def answers(self) -> bool:
        await get_json(self.port, self.ready_path)
        return True


class ServerProcess(WyomingProcess):
    """``python -m wyoming_polytts`` with both front doors on free loopback ports."""

    def __init__(
        self,
        folder: Path,
        config: Mapping[str, Any] | None = None,
        *,
        source: list[str] | None = None,
        http: bool = True,
        program: list[str] | None = None,
    ) -> None:
        """Its log (and its config) go in ``folder``.

        The configuration is ``config`` written to ``folder/config.yaml``, its cache and
        voices folders inside ``folder`` unless it names them; or, with ``source``, the
        arguments that name it (``["--options-file", path]``), where ``http`` says whether
        it serves the HTTP API. Either way the listen addresses are overridden.
        ``program`` is the command that starts it (another installation's
        ``wyoming-polytts``); by default this Python's ``-m wyoming_polytts``.
        """
        port = free_port()
        self.http_port = free_port()
        """Port of the OpenAI-compatible HTTP API."""

        self.config: dict[str, Any] = {}
        """What was written to ``config.yaml`` (nothing when ``source`` names the config)."""

        if source is None:
            self.config = {"cache_dir": str(folder / "cache"), "voices_dir": str(folder / "voices")}
            self.config.update(config or {})
            config_path = folder / "config.yaml"
            config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
            source = ["--config", str(config_path)]
            http = bool(self.config.get("openai", {}).get("enabled", True))
        self.http = http
        argv = [*(program or [sys.executable, "-m", "wyoming_polytts"]), *source]
        argv += ["--uri", f"tcp://{HOST}:{port}"]
        argv += ["--http-host", HOST, "--http-port", str(self.http_port)]
        super().__init__("wyoming-polytts", argv, port, folder / "server.log")

    @property
    def base_url(self) -> str:
        """Base URL of the OpenAI-compatible API, as the openai SDK takes it."""
        return f"http://{HOST}:{self.http_port}/v1"

    async def answers(self) -> bool:
        """It answers ``describe`` and, with the HTTP API on, has loaded what it preloads."""
        await describe(self.port)
        return not self.http or bool((await get_json(self.http_port, "/health"))["ready"])

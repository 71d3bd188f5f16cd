"""A supervised child process speaking Wyoming on its stdin and stdout.

The child is started when the engine loads and stopped when it unloads (or the
server stops). Its stderr lines go to our log. When it dies it is restarted
with exponential backoff: a child that had come up restarts after a second, one
that keeps failing before it answers waits up to ``max_backoff``. Its one
connection serves one request at a time; a request cut off by the child's
death gets a clear error, and the next one waits for the restart.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from ...errors import EngineUnavailableError, PolyttsError, SynthesisError
from .client import Conversation, UpstreamClosedError, UpstreamInfo, describe, request_failure
from .link import Link, LinkState, LinkTimings

_LOGGER = logging.getLogger(__name__)

_LINE_LIMIT = 1 << 20
"""Longest stderr line forwarded (and longest event header read from stdout)."""

_STOP_GRACE = 5.0
"""Seconds a child may take to exit after SIGTERM before it is killed."""


class StdioLink(Link[UpstreamInfo, Conversation]):
    """A child started from ``command``; requests share its stdin/stdout, one at a time."""

    reusable = True

    def __init__(
        self,
        label: str,
        command: list[str],
        timings: LinkTimings,
        on_info: Callable[[UpstreamInfo], None],
        on_change: Callable[[], None],
    ) -> None:
        super().__init__(label, timings, on_info, on_change)
        self.command = command
        self.pid: int | None = None
        self.restarts = 0
        self.spawn_failed = False
        """The command could not be started at all (missing or not executable)."""

        self._process: asyncio.subprocess.Process | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=3)
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._stopping = False

    async def stop(self) -> None:
        """Stop the child: SIGTERM, then SIGKILL after a grace period."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            await _end(process, _STOP_GRACE)
        await super().stop()

    # --- supervision --------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            came_up, reason = await self._run_once()
            if self._stopping:
                return
            failures = 1 if came_up else failures + 1
            pause = self.timings.backoff(failures)
            if came_up:  # a working child died: its voices stay while it restarts
                _LOGGER.warning("Upstream %s: %s; restarting", self.label, reason)
                self._set(LinkState.STARTING, reason)
            else:
                self._set(LinkState.DOWN, reason)
                _LOGGER.info("Upstream %s: trying again in %g s", self.label, pause)
            self._attempted.set()
            await asyncio.sleep(pause)
            self.restarts += 1

    async def _run_once(self) -> tuple[bool, str]:
        """Start the child and serve until it exits: did it answer describe, and why it ended."""
        self._stderr_tail.clear()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # terminal signals are for us; we stop the child
                limit=_LINE_LIMIT,
            )
        except OSError as err:
            self.spawn_failed = True
            return False, f"cannot start {self.command[0]}: {err.strerror or err}"
        self._process, self.pid, self.spawn_failed = process, process.pid, False
        _LOGGER.info("Upstream %s: started %s (pid %d)", self.label, self.command[0], process.pid)
        assert process.stdout is not None and process.stdin is not None
        assert process.stderr is not None
        forwarding = asyncio.create_task(self._forward(process.stderr))
        conversation = Conversation(process.stdout, process.stdin, self.timings.start)
        came_up = False
        problem: str | None = None
        try:
            async with self._lock:
                info = await describe(conversation)
            came_up = True
            self._set_up(info)
            self._ready.set()
            self._attempted.set()
            conversation.timeout = self.timings.request
            await self._refresh_until_exit(process, conversation)
        except (TimeoutError, OSError, UpstreamClosedError, PolyttsError) as err:
            problem = _problem(err, self.timings.start if not came_up else self.timings.request)
        finally:
            self._ready.clear()
            await _end(process, 1.0)  # if it hangs or lost step, a fresh child is the way back
            with suppress(TimeoutError):
                await asyncio.wait_for(forwarding, 2)
            self._process = None
        return came_up, self._exit_reason(process.returncode, problem)

    async def _refresh_until_exit(
        self, process: asyncio.subprocess.Process, conversation: Conversation
    ) -> None:
        exited = asyncio.ensure_future(process.wait())
        try:
            while not (await asyncio.wait([exited], timeout=self.timings.refresh))[0]:
                if not self._lock.locked():  # never delay a request for a refresh
                    async with self._lock:
                        self._set_up(await describe(conversation))
        finally:
            exited.cancel()

    async def _forward(self, stderr: asyncio.StreamReader) -> None:
        """Log the child's stderr line by line (progress bars' carriage returns split)."""
        while True:
            try:
                line = await stderr.readline()
            except ValueError:  # a line over the limit was dropped
                _LOGGER.info("[%s] (an overlong line of output was cut)", self.label)
                continue
            if not line:
                return
            for part in line.decode(errors="replace").split("\r"):
                if part.strip():
                    self._stderr_tail.append(part.strip())
                    _LOGGER.info("[%s] %s", self.label, part.rstrip())

    def _exit_reason(self, returncode: int | None, problem: str | None) -> str:
        status = _exit_status(returncode)
        detail = problem or (self._stderr_tail[-1] if self._stderr_tail else None)
        return f"the process {status}" + (f" ({detail})" if detail else "")

    # --- requests -----------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conversation]:
        """The child's connection, once it is free; waits (a while) for a restarting child."""
        process = await self._usable_process()
        assert process.stdout is not None and process.stdin is not None
        try:
            yield Conversation(process.stdout, process.stdin, self.timings.request)
        except PolyttsError:
            raise  # an error answer: the conversation ended in step
        except UpstreamClosedError as err:
            with suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 2)
            raise SynthesisError(
                f"upstream {self.label}: the process "
                f"{_exit_status(process.returncode)} during the request"
            ) from err
        except (TimeoutError, OSError) as err:
            await _end(process, 1.0)  # out of step with us now: restart it
            raise request_failure(self.label, err, self.timings.request) from err
        finally:
            if process.stdout.at_eof() and self._process is process:
                self._ready.clear()  # it is dying: the next request waits for the restart
            self._lock.release()

    async def _usable_process(self) -> asyncio.subprocess.Process:
        """Wait until the child is up and free; returns with the lock held."""
        deadline = asyncio.get_running_loop().time() + self.timings.connect
        while True:
            if not self._ready.is_set():
                remaining = deadline - asyncio.get_running_loop().time()
                try:
                    await asyncio.wait_for(self._ready.wait(), max(remaining, 0.001))
                except TimeoutError as err:
                    raise self.unavailable() from err
            await self._lock.acquire()
            process = self._process
            if (
                process is not None
                and process.returncode is None
                and process.stdout is not None
                and not process.stdout.at_eof()
            ):
                return process
            self._lock.release()
            self._ready.clear()

    def health(self) -> dict[str, Any]:
        return {**super().health(), "pid": self.pid, "restarts": self.restarts}

    def resident_bytes(self) -> int | None:
        """Resident memory of the child (Linux), or None when unknown."""
        if self.pid is None:
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def unavailable(self) -> EngineUnavailableError:
        if self.spawn_failed or self.state is not LinkState.STARTING:
            return super().unavailable()
        return EngineUnavailableError(
            f"upstream {self.label} is (re)starting and did not answer within "
            f"{self.timings.connect:g} s" + (f" (last problem: {self.error})" if self.error else "")
        )


async def _end(process: asyncio.subprocess.Process, grace: float) -> None:
    """Wait ``grace`` seconds for the child to exit, then kill it.

    Never kill a child that may have exited already: the kill would reap it
    behind asyncio's back, which then reports status 255 instead of the real one.
    """
    if process.returncode is None:
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
    await process.wait()


def _exit_status(returncode: int | None) -> str:
    if returncode is None:
        return "is still running"
    if returncode < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
        return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _problem(err: BaseException, timeout: float) -> str | None:
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(err, UpstreamClosedError):
        return None  # the exit status and its last words say more
    return str(err) or type(err).__name__


def command_label(command: list[str]) -> str:
    """A short name for a command: the module of ``python -m module``, else the program."""
    if "-m" in command[:-1]:
        return command[command.index("-m") + 1].rsplit(".", 1)[-1]
    return os.path.basename(command[0])

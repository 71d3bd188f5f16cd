"""Peak memory of a server process: resident memory by sampling, GPU memory via nvidia-smi."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import psutil

_INTERVAL = 0.05
"""Seconds between samples."""


class MemorySampler:
    """Samples the resident memory of a process and its children in a thread."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self.peak_rss = 0
        """Bytes; the highest sum over the process and its children."""

        self.peak_gpu = 0
        """Bytes of GPU memory (0 without nvidia-smi)."""

        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        # The kernel's own high-water mark catches peaks between samples (Linux).
        self.peak_rss = max(self.peak_rss, _kernel_peak_rss(self._pid))

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(_INTERVAL):
            try:
                processes = [self._process, *self._process.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in processes)
            except psutil.Error:  # the process has ended
                return
            self.peak_rss = max(self.peak_rss, rss)
            if ticks % 20 == 0:  # nvidia-smi is slow: once a second
                pids = {p.pid for p in processes}
                self.peak_gpu = max(self.peak_gpu, gpu_memory(pids))
            ticks += 1


def _kernel_peak_rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def gpu_memory(pids: set[int]) -> int:
    """Bytes of GPU memory the given processes use, from nvidia-smi (0 without a GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        result = subprocess.run(
            [smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    total = 0
    for line in result.stdout.splitlines():
        pid, _, used = line.partition(",")
        if pid.strip().isdigit() and int(pid) in pids:
            total += int(float(used)) * 1024 * 1024
    return total

"""Memory sizes, the size of the card, and what loading an engine takes.

Sizes in the configuration are bytes (a whole number) or text with a unit
(``512MB``, ``6GiB``); ``pool.gpu_memory_budget`` may also be a percentage of
the card (``80%``). A load is measured as the CUDA memory torch allocated
during it, when it allocated any, else as the growth of the process's resident
memory (ONNX Runtime and other engines that do not allocate through torch).
Freed memory is handed back (garbage collection, torch's CUDA cache, glibc's
``malloc_trim``) after every unload, so the next measurement starts clean.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import re
import shutil
import subprocess
import sys
from typing import Any

from ..errors import ConfigError

_LOGGER = logging.getLogger(__name__)

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_SMI_TIMEOUT = 10.0
"""Seconds ``nvidia-smi`` may take to report the card's memory."""


def parse_size(value: int | str, key: str) -> int:
    """Bytes from a whole number or text such as ``6GiB``; a :class:`ConfigError` naming ``key``."""
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        unit = _UNITS.get(match[2].lower()) if match else None
        if match is None or unit is None:
            raise ConfigError(
                f"{key}: expected bytes or a size such as 512MB or 6GiB, got {value!r}"
            )
        size = int(float(match[1]) * unit)
    if size <= 0:
        raise ConfigError(f"{key}: expected a size above 0, got {value!r}")
    return size


def parse_budget(value: int | str, key: str) -> int | float:
    """A budget in bytes (int), or a share of the card (float, 0 to 1) from text like ``80%``."""
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match is None:
        return parse_size(value, key)
    share = float(match[1]) / 100
    if not 0 < share <= 1:
        raise ConfigError(f"{key}: expected a percentage above 0 and at most 100, got {value!r}")
    return share


def resolve_budget(value: int | str | None, key: str) -> int | None:
    """The budget in bytes; a percentage is taken of the card (or, without one, of the RAM)."""
    if value is None:
        return None
    budget = parse_budget(value, key)
    if isinstance(budget, int):
        return budget
    total = card_memory()
    if total is None:
        total = _ram()
        _LOGGER.warning("%s: no CUDA GPU found; taking %s of the RAM instead", key, value)
    return int(total * budget)


def card_memory() -> int | None:
    """Total memory of the first CUDA GPU, or None when there is none.

    Asks torch when it is already imported, else ``nvidia-smi``, so finding the
    size never imports torch itself.
    """
    torch = _imported_torch()
    if torch is not None and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(0).total_memory)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=_SMI_TIMEOUT)
        return int(out.stdout.split()[0]) * 2**20 if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


class LoadMeter:
    """What one load adds to the process: start it before ``load()``, read it after."""

    def __init__(self) -> None:
        self._cuda = _cuda_allocated()
        self._resident = resident_memory()
        self.source = "resident memory"
        """What :meth:`added` measured: CUDA memory or resident memory."""

    def added(self) -> int | None:
        """Bytes added since the meter started; None when nothing can be measured here."""
        cuda = _cuda_allocated() - self._cuda
        if cuda > 0:
            self.source = "CUDA memory"
            return cuda
        resident = resident_memory()
        if resident is None or self._resident is None:
            return None
        return max(0, resident - self._resident)


def release_memory() -> None:
    """Hand freed memory back: collect garbage, empty torch's CUDA cache, trim the heap."""
    gc.collect()
    torch = _imported_torch()
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    trim_heap()


def can_trim_heap() -> bool:
    """Whether :func:`trim_heap` does anything here (glibc)."""
    return _LIBC is not None


def trim_heap() -> None:
    """Hand the free pages inside glibc's heaps back to the system (``malloc_trim``);
    nothing on other C libraries."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is running out of memory: Python's ``MemoryError`` or torch's
    ``torch.cuda.OutOfMemoryError`` (checked only when torch is imported already)."""
    if isinstance(err, MemoryError):
        return True
    torch = _imported_torch()
    return torch is not None and isinstance(err, torch.cuda.OutOfMemoryError)


def resident_memory() -> int | None:
    """The process's resident memory in bytes (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def format_bytes(size: int | None) -> str:
    """``512 MiB``, ``1.5 GiB``; ``unknown`` for None."""
    if size is None:
        return "unknown"
    if size >= 2**30:
        return f"{size / 2**30:.1f} GiB"
    return f"{size / 2**20:.0f} MiB"


def _imported_torch() -> Any:
    """torch when something imported it already; None otherwise (never imports it)."""
    return sys.modules.get("torch")


def _cuda_allocated() -> int:
    torch = _imported_torch()
    if torch is None or not torch.cuda.is_initialized():
        return 0
    return sum(int(torch.cuda.memory_allocated(i)) for i in range(torch.cuda.device_count()))


def _ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _load_libc() -> Any:
    """glibc, for ``malloc_trim``; None on other C libraries."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()

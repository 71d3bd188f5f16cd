"""sherpa-onnx's Vocos vocoder for ZipVoice: fetched from its release, checked by sha256.

``vocos_24khz.onnx`` is not on Hugging Face (``k2-fsa/sherpa-onnx-models`` holds
only ``vocoder-models/vocos-22khz-univ.onnx``); it is an asset of sherpa-onnx's
GitHub release ``vocoder-models``. sherpa-onnx's own scripts fetch it without a
checksum. The sha256 and size here are the ones that several independent
projects pin for that asset (a 54,157,409-byte file); a download that does not
match is deleted and refused. With ``vocoder_sha256: null`` only the size the
server announces is checked, and a warning says that the file is unverified.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ...errors import EngineUnavailableError

_LOGGER = logging.getLogger(__name__)

VOCODER_URL = (
    "https://github.com/k2-fsa/sherpa-onnx/releases/download/vocoder-models/vocos_24khz.onnx"
)
VOCODER_SHA256 = "bcb3b970e384161c4d634f0bb9e999ff1c471b34c9bc0b1049a5014065ed3cc0"
VOCODER_NAME = "vocos_24khz.onnx"

_BLOCK = 1 << 20
_TIMEOUT = 30.0
"""Seconds without a byte before the download gives up."""

Progress = Callable[[str, float | None], None]
"""``(step, fraction)``, as :meth:`Engine.report_progress` takes them."""


def download_vocoder(url: str, sha256: str | None, target: Path, progress: Progress) -> Path:
    """Fetch ``url`` into ``target`` atomically, checked against ``sha256`` when given.

    Raises :class:`EngineUnavailableError` saying what failed; nothing is left behind.
    """
    step = f"downloading {target.name} from {url}"
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            progress(step, 0.0 if total else None)
            while block := response.read(_BLOCK):
                out.write(block)
                digest.update(block)
                done += len(block)
                progress(step, done / total if total else None)
        if total is not None and done != total:
            raise EngineUnavailableError(f"{url}: got {done} of {total} bytes")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise EngineUnavailableError(
                f"{url}: sha256 {digest.hexdigest()} is not the expected {sha256} "
                "(engines.zipvoice.vocoder_sha256); the file was deleted"
            )
        if sha256 is None:
            _LOGGER.warning(
                "ZipVoice: %s was downloaded without a checksum (vocoder_sha256 is null); "
                "its sha256 is %s",
                target.name,
                digest.hexdigest(),
            )
        partial.replace(target)
    except EngineUnavailableError:
        partial.unlink(missing_ok=True)
        raise
    except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors
        partial.unlink(missing_ok=True)
        raise EngineUnavailableError(
            f"the download of the ZipVoice vocoder from {url} failed: {type(err).__name__}: "
            f"{err}; download {VOCODER_NAME} by hand and set engines.zipvoice.vocoder"
        ) from err
    return target

"""Splitting a Piper voice's ONNX graph at its decoder, once per model file.

The split runs in a child process (``python -m wyoming_polytts.engines.piper.split
MODEL FOLDER``) and its two graphs are kept in the cache: loading and cutting
the graph with the ``onnx`` package takes a few copies of the model, which the
server's own process would otherwise keep as heap it never hands back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...common.file_cache import file_key

_DECODER_FIRST_NODE = "/dec/conv_pre/Conv"
"""The decoder's first layer in graphs exported by Piper's training code."""

_MANIFEST = "split.json"
_SPLIT_TIMEOUT = 300.0


@dataclass(frozen=True)
class SplitModel:
    """The two halves of a voice's graph and the latent tensor that joins them."""

    encoder: Path
    decoder: Path
    latent: str


def split_model(model: Path, cache: Path) -> SplitModel | None:
    """The voice's split graphs from the cache, made first if needed; None when the
    graph does not have the layout this expects (the voice then runs whole)."""
    folder = cache / _cache_key(model)
    manifest = folder / _MANIFEST
    if not manifest.is_file():
        _make(model, folder)
    latent = json.loads(manifest.read_text(encoding="utf-8"))["latent"]
    if latent is None:
        return None
    return SplitModel(folder / "encoder.onnx", folder / "decoder.onnx", latent)


def _cache_key(model: Path) -> str:
    identity = f"{model.resolve()}:{file_key(model)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{model.name.removesuffix('.onnx')}-{digest}"


def _make(model: Path, folder: Path) -> None:
    """Split in a child process into a staging folder, then move it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".split-", dir=folder.parent))
    try:
        subprocess.run(
            [sys.executable, "-m", __name__, str(model), str(staging)],
            check=True,
            capture_output=True,
            text=True,
            timeout=_SPLIT_TIMEOUT,
        )
        try:
            staging.rename(folder)
        except OSError:  # another process got there first
            if not (folder / _MANIFEST).is_file():
                raise
    except subprocess.CalledProcessError as err:
        last = (err.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"splitting {model.name} failed: {last}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_split(model: Path, folder: Path) -> None:
    """Write ``encoder.onnx``, ``decoder.onnx`` and the manifest naming the latent
    tensor (null when the decoder's first layer is not found)."""
    import onnx
    from onnx.utils import Extractor

    graph = onnx.load(str(model))
    first = next((n for n in graph.graph.node if n.name == _DECODER_FIRST_NODE), None)
    latent = None if first is None else first.input[0]
    if latent is not None:
        inputs = [i.name for i in graph.graph.input]
        output = graph.graph.output[0].name
        extractor = Extractor(graph)
        onnx.save(extractor.extract_model(inputs, [latent]), str(folder / "encoder.onnx"))
        speaker = [name for name in inputs if name == "sid"]
        decoder = extractor.extract_model([latent, *speaker], [output])
        onnx.save(decoder, str(folder / "decoder.onnx"))
    (folder / _MANIFEST).write_text(json.dumps({"latent": latent}), encoding="utf-8")


if __name__ == "__main__":
    write_split(Path(sys.argv[1]), Path(sys.argv[2]))

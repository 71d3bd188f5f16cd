"""Install torchaudio beside a CPU-only torch, without its CUDA-linked native libraries.

The torchaudio wheels on PyPI link their native extensions against CUDA
(``libc10_cuda.so``), so ``import torchaudio`` fails beside a CPU build of torch.
Without those extensions torchaudio runs on pure Python, and the parts XTTS
needs (mel spectrograms, resampling) keep working; audio file I/O is done with
soundfile in this project anyway. This script downloads the pinned wheel with
pip, rewrites it without ``torchaudio/lib/*.so`` (its RECORD updated to match, so
pip can still verify and uninstall it), and installs the result with pip.

With a CUDA build of torch it installs the unmodified wheel instead.

Usage: python tools/cpu_torchaudio.py [--version 2.11.0]
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT_VERSION = "2.11.0"
NATIVE = "torchaudio/lib/*.so"
IMPORT_CHECK = (
    "import torch, torchaudio.functional; "
    "print('torchaudio', torchaudio.__version__, 'imports beside torch', torch.__version__)"
)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def torch_has_cuda() -> bool:
    import torch

    return torch.version.cuda is not None


def download(version: str, folder: Path) -> Path:
    pip(
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(folder),
        f"torchaudio=={version}",
    )
    (wheel,) = folder.glob("torchaudio-*.whl")
    return wheel


def strip_native(wheel: Path, out_dir: Path) -> Path:
    """Copy ``wheel`` into ``out_dir`` without the native libraries; return the copy."""
    out = out_dir / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        dropped = [n for n in src.namelist() if fnmatch.fnmatch(n, NATIVE)]
        if not dropped:
            raise SystemExit(f"{wheel.name}: no {NATIVE} found; is this the right wheel?")
        for item in src.infolist():
            if item.filename in dropped:
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(
                    line for line in lines if line.split(",", 1)[0] not in dropped
                ).encode()
            dst.writestr(item, data)
    print(f"Removed from {wheel.name}: {', '.join(Path(n).name for n in dropped)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION, help="torchaudio release")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download(args.version, Path(tmp) / "download")
        if not torch_has_cuda():
            built = Path(tmp) / "built"
            built.mkdir()
            wheel = strip_native(wheel, built)
        pip("install", "--quiet", "--no-deps", "--force-reinstall", str(wheel))
    subprocess.run([sys.executable, "-c", IMPORT_CHECK], check=True)  # a fresh interpreter


if __name__ == "__main__":
    main()

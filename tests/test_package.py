"""The package as PyPI gets it: ``python -m build`` on a copy of this checkout gives an
sdist and a wheel with everything the server reads at run time and metadata PyPI accepts,
and a fresh virtual environment that installs the wheel (with the piper extra, from the
package index) serves speech from it.

The copy is this checkout's files (tracked, and new ones git does not ignore) with the
leftovers of a developer's work planted in it, which must reach neither archive.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import aiohttp
import pytest
from trove_classifiers import classifiers as known_classifiers
from wyoming.client import AsyncTcpClient

from wyoming_polytts import __version__
from wyoming_polytts.__main__ import EXAMPLE_CONFIG

from .conftest import Transcriber
from .helpers import TIMEOUT, ServerProcess, assert_speech_like, checkout_files, synthesize

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("wyoming_polytts", "openai_shim")
INSTALL_TIMEOUT = 900.0
"""Seconds pip may take to install the wheel with its dependencies into a fresh venv."""

LEFTOVERS = (
    ".venv/lib/python3.11/site-packages/numpy/__init__.py",
    ".mypy_cache/3.11/wyoming_polytts.json",
    "tests/artifacts/web-page.png",
    "cache/piper/en_US-joe-medium.onnx",
    "voices/grandma/reference.wav",
    "bench/results/run.tmp",
    "wyoming_polytts/__pycache__/config.cpython-311.pyc",
    "wyoming_polytts/engines/piper/downloaded.onnx",
    "openai_shim/web/.DS_Store",
)
"""A developer's leftovers (caches, models, test artifacts), planted in the copy."""

SDIST_FILES = {"PKG-INFO", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in"}
SDIST_FILES |= {"pyproject.toml", "setup.cfg", "config.yaml"}
"""Files of the sdist outside the packages and their egg-info."""


@dataclass
class Dist:
    """What ``python -m build`` made."""

    sdist: Path
    wheel: Path

    def sdist_names(self) -> set[str]:
        """Paths inside the sdist, below its top folder."""
        with tarfile.open(self.sdist) as archive:
            return {
                name.split("/", 1)[1]
                for name in archive.getnames()
                if "/" in name and not archive.getmember(name).isdir()
            }

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return set(archive.namelist())

    def wheel_text(self, name: str) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(name).decode("utf-8")

    def metadata(self) -> Message:
        return email.parser.Parser().parsestr(
            self.wheel_text(f"wyoming_polytts-{__version__}.dist-info/METADATA")
        )


def _clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH, so a fresh venv sees only what it installed."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def _package_files() -> set[str]:
    """The two packages' files in this checkout: modules and the data they read."""
    return {name for name in checkout_files(REPO) if name.split("/")[0] in PACKAGES}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build`` (sdist, then the wheel from it) on a copy with leftovers planted;
    the copy, not this checkout, gets the build's egg-info."""
    source = tmp_path_factory.mktemp("checkout")
    for name in checkout_files(REPO):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name, follow_symlinks=False)
    for name in LEFTOVERS:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"leftover")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    assert sdist.name == f"wyoming_polytts-{__version__}.tar.gz"
    assert wheel.name == f"wyoming_polytts-{__version__}-py3-none-any.whl"
    return Dist(sdist, wheel)


# --- the archives ----------------------------------------------------------------


def test_twine_check(dist: Dist) -> None:
    """PyPI's own checks of the metadata and of the README it renders."""
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist.sdist), str(dist.wheel)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metadata(dist: Dist) -> None:
    meta = dist.metadata()
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["Name"] == "wyoming-polytts" and meta["Version"] == __version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    # The GPL-3.0-or-later piper extra is named where PyPI shows it first.
    assert "piper" in meta["Summary"] and "GPL-3.0-or-later" in meta["Summary"]
    assert meta["Requires-Python"] == project["requires-python"]
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload() == (REPO / "README.md").read_text(encoding="utf-8")
    assert set(meta.get_all("Provides-Extra")) == set(project["optional-dependencies"])
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL"))
    assert {"Homepage", "Changelog", "Issues", "Source"} <= set(urls)
    assert all(url.startswith("https://github.com/wyoming-polytts/") for url in urls.values())
    classifiers = meta.get_all("Classifier")
    assert classifiers and not set(classifiers) - known_classifiers, "PyPI refuses unknown ones"
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "the expression says it"
    assert meta["Keywords"]
    assert "wyoming-polytts = wyoming_polytts.__main__:run" in dist.wheel_text(
        f"wyoming_polytts-{__version__}.dist-info/entry_points.txt"
    )


def test_wheel_carries_what_the_server_reads(dist: Dist) -> None:
    names = dist.wheel_names()
    packaged = {name for name in names if name.split("/")[0] in PACKAGES}
    expected = _package_files()
    assert sorted(expected - packaged) == [], "missing from the wheel"
    assert sorted(packaged - expected) == [], "leftovers in the wheel"
    assert {f"{package}/py.typed" for package in PACKAGES} <= names
    assert any(name.startswith("openai_shim/web/") for name in names)
    # The documented configuration, as a file (not a link) with config.yaml's text.
    example = dist.wheel_text(f"wyoming_polytts/{EXAMPLE_CONFIG}")
    assert example == (REPO / "config.yaml").read_text(encoding="utf-8")
    assert f"wyoming_polytts-{__version__}.dist-info/licenses/LICENSE" in names


def test_sdist_carries_the_source_and_nothing_else(dist: Dist) -> None:
    names = dist.sdist_names()
    in_packages = {name for name in names if name.split("/")[0] in PACKAGES}
    assert sorted(_package_files() ^ in_packages) == [], "missing or leftovers in the sdist"
    egg_info = {name for name in names if name.startswith("wyoming_polytts.egg-info/")}
    assert names - in_packages - egg_info == SDIST_FILES
    with tarfile.open(dist.sdist) as archive:
        (link,) = (m for m in archive.getmembers() if m.name.endswith(EXAMPLE_CONFIG))
        assert link.isfile(), "the example config is a file in the sdist, not a link"


# --- a fresh virtual environment ------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel and its piper extra, installed by pip from the index."""
    path = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(path, with_pip=True)
    result = subprocess.run(
        [str(path / "bin/pip"), "install", f"{dist.wheel}[piper]"],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return path


def _in_venv(fresh_venv: Path, *argv: str) -> str:
    result = subprocess.run(
        [str(fresh_venv / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_clean_env(),
        cwd=fresh_venv,  # not this checkout, whose packages python -c would import
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_fresh_venv_imports_the_installed_package(fresh_venv: Path) -> None:
    script = "import piper, wyoming_polytts as w, openai_shim as o; print(w.__file__, o.__file__)"
    where = _in_venv(fresh_venv, "python", "-c", script).split()
    site = fresh_venv / "lib"
    assert len(where) == 2 and all(Path(path).is_relative_to(site) for path in where), where
    assert _in_venv(fresh_venv, "wyoming-polytts", "--version").strip() == __version__
    printed = _in_venv(fresh_venv, "wyoming-polytts", "--print-config")
    assert printed == (REPO / "config.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def installed_server(
    fresh_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The fresh venv's ``wyoming-polytts``, its defaults (Piper's joe) on free ports."""
    server = ServerProcess(
        tmp_path_factory.mktemp("installed-server"),
        program=[str(fresh_venv / "bin/wyoming-polytts")],
    )
    with pytest.MonkeyPatch.context() as env:
        env.delenv("PYTHONPATH", raising=False)
        server.start()
    yield server
    assert server.stop() == 0, server.log()


async def test_fresh_venv_serves_speech(
    installed_server: ServerProcess, transcriber: Transcriber
) -> None:
    text = "The package from the wheel speaks."
    async with AsyncTcpClient("127.0.0.1", installed_server.port) as client:
        speech = await synthesize(client, text)
    assert not speech.errors, speech.errors
    assert_speech_like(speech.samples, speech.rate, text)
    transcriber.assert_says(speech.samples, speech.rate, text)


async def test_fresh_venv_serves_the_web_page(installed_server: ServerProcess) -> None:
    base = f"http://127.0.0.1:{installed_server.http_port}"
    files = sorted(p.name for p in (REPO / "openai_shim/web").iterdir() if p.name != "index.html")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/") as response:
            assert response.status == 200
            assert "<base href=" in await response.text()
        for name in files:
            async with session.get(f"{base}/web/{name}") as response:
                assert response.status == 200, name
                assert await response.read() == (REPO / "openai_shim/web" / name).read_bytes()

"""The images (GPU Dockerfile, add-on Dockerfile), the compose file and the linters.

No Docker engine runs here, so nothing is built: hadolint checks both
Dockerfiles, shellcheck every script of the add-on, and the files are checked
against the configuration they serve and against their build contexts: the
repository for the GPU image, the add-on's own folder for the add-on (as the
Supervisor and the release workflow build it), which installs the package's
release from PyPI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlparse

import pytest
import yaml

from wyoming_polytts.__main__ import _parser
from wyoming_polytts.addon_options import OPENAI_PORT, AddonEngine
from wyoming_polytts.config import load_config

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "addon"
DOCKERFILES = [REPO / "Dockerfile", ADDON / "Dockerfile"]
CONTEXTS = {REPO / "Dockerfile": REPO, ADDON / "Dockerfile": ADDON}
"""Each Dockerfile's build context."""
SCRIPTS = sorted(
    path
    for path in (ADDON / "rootfs").rglob("*")
    if path.is_file() and path.read_bytes().startswith(b"#!")
)


def _tool(name: str) -> str:
    """A linter installed by the test extra, next to this Python or on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    assert found, f"{name} is missing: install the test extra (pip install -e '.[test]')"
    return found


# --- linters -----------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [_tool("hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_every_script() -> None:
    assert len(SCRIPTS) >= 3
    result = subprocess.run(
        [_tool("shellcheck"), *map(str, SCRIPTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- images and compose --------------------------------------------------------


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _pyproject_extras() -> set[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"]["optional-dependencies"])


def _runs(dockerfile: Path) -> str:
    return " ".join(args for kind, args in _instructions(dockerfile) if kind == "RUN")


def _arg_defaults(dockerfile: Path) -> dict[str, str]:
    instructions = _instructions(dockerfile)
    return dict(a.split("=", 1) for kind, a in instructions if kind == "ARG" and "=" in a)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_images_check_health(dockerfile: Path) -> None:
    checks = [args for kind, args in _instructions(dockerfile) if kind == "HEALTHCHECK"]
    assert len(checks) == 1 and "wyoming_polytts.healthcheck" in checks[0]


def test_addon_image_installs_the_release_of_its_version() -> None:
    """PyPI's release at BUILD_VERSION (which the Supervisor and the builder set to the
    add-on's version), or a developer's wheel named in WHEEL, with the add-on's engines."""
    runs = _runs(ADDON / "Dockerfile")
    extras = re.search(r'pip install "wyoming-polytts\[([a-z_,]+)\] \$\{source\}"', runs)
    assert extras, 'expected pip install "wyoming-polytts[extras] ${source}"'
    assert extras[1].split(",") == list(get_args(AddonEngine))
    assert set(get_args(AddonEngine)) <= _pyproject_extras()
    assert 'source="==${BUILD_VERSION}"' in runs
    assert 'source="@ file:///tmp/wheels/${WHEEL}"' in runs
    assert {"BUILD_VERSION", "WHEEL"} <= set(_arg_defaults(ADDON / "Dockerfile"))
    assert not re.search(r"pip install ['\"]?\.", runs), "the add-on has no source to install"


def test_addon_base_image_is_home_assistants_debian() -> None:
    """The Dockerfile's default (the multi-arch image the builder action pulls) and
    build.yaml's per-architecture images (for Supervisors that build) are one release."""
    default = _arg_defaults(ADDON / "Dockerfile")["BUILD_FROM"]
    release = re.fullmatch(r"ghcr\.io/home-assistant/base-debian:([a-z]+)", default)
    assert release, default
    build_from = yaml.safe_load((ADDON / "build.yaml").read_text(encoding="utf-8"))["build_from"]
    for arch, image in build_from.items():
        assert image == f"ghcr.io/home-assistant/{arch}-base-debian:{release[1]}"


def test_gpu_image() -> None:
    instructions = _instructions(REPO / "Dockerfile")
    args = _arg_defaults(REPO / "Dockerfile")
    assert re.search(r"pip install ['\"]\.", _runs(REPO / "Dockerfile")), "installs this source"
    assert "cuda" in args["CUDA_IMAGE"] and "runtime" in args["CUDA_IMAGE"]
    assert set(args["EXTRAS"].split(",")) <= _pyproject_extras()
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert f"torch=={args['TORCH_VERSION']}" in makefile, "same torch as the Makefile"
    assert f"TORCHAUDIO_VERSION := {args['TORCHAUDIO_VERSION']}" in makefile
    runs = " ".join(a for kind, a in instructions if kind == "RUN")
    # onnxruntime-gpu replaces the plain onnxruntime the extras pull in.
    assert runs.index("pip uninstall -y onnxruntime") < runs.index('pip install "onnxruntime-gpu')
    users = [a for kind, a in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    volumes = [json.loads(a) for kind, a in instructions if kind == "VOLUME"]
    exposed = {p for kind, a in instructions if kind == "EXPOSE" for p in a.split()}
    config = load_config(REPO / "docker/config.yaml")
    assert set(config.engine_options) == set(args["EXTRAS"].split(",")), "a section per engine"
    assert volumes == [[str(config.cache_dir), str(config.voices_dir)]]
    wyoming_port = urlparse(config.settings.wyoming.uri).port
    assert exposed == {f"{wyoming_port}/tcp", f"{OPENAI_PORT}/tcp"}


def _copied(dockerfile: Path) -> list[str]:
    """The sources of every COPY and ADD (flags and the destination left out)."""
    sources = []
    for kind, args in _instructions(dockerfile):
        if kind in ("COPY", "ADD"):
            words = json.loads(args) if args.startswith("[") else args.split()
            sources += [word for word in words if not word.startswith("--")][:-1]
    return sources


def _ignored(context: Path) -> set[str]:
    path = context / ".dockerignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_build_context_holds_what_the_image_copies(dockerfile: Path) -> None:
    context = CONTEXTS[dockerfile]
    sources = _copied(dockerfile)
    assert sources
    for source in sources:
        path = (context / source).resolve()
        assert path.is_relative_to(context) and path.exists(), f"{source} is not in {context}"
        assert not any(fnmatch(source.rstrip("/"), p) for p in _ignored(context)), source


def test_gpu_build_context_keeps_what_pip_builds_from() -> None:
    """The GPU image copies the repository and pip-installs it: the packages, pyproject's
    readme and license, the config the package's example links to, and docker/."""
    ignored = _ignored(REPO)
    assert {".git", ".venv"} <= ignored
    needed = {"pyproject.toml", "README.md", "LICENSE", "config.yaml", "docker"}
    needed |= {"wyoming_polytts", "openai_shim"}
    assert all((REPO / name).exists() for name in needed)
    assert not any(fnmatch(name, pattern) for name in needed for pattern in ignored)


def test_compose_file(monkeypatch: pytest.MonkeyPatch) -> None:
    compose: Any = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    (service,) = (each for each in compose["services"].values() if "profiles" not in each)
    assert service["build"] == "."
    assert service["restart"] == "unless-stopped"
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert {p.split(":")[-1] for p in service["ports"]} == {"10200", str(OPENAI_PORT)}
    config = load_config(REPO / "docker/config.yaml")
    targets = {volume.split(":")[1] for volume in service["volumes"]}
    assert targets == {str(config.cache_dir), str(config.voices_dir)}
    assert set(compose["volumes"]) == {volume.split(":")[0] for volume in service["volumes"]}
    # The environment overrides are ones the CLI reads.
    environment = service["environment"]
    assert set(environment) <= {"POLYTTS_CONFIG", "POLYTTS_URI", "POLYTTS_DEBUG"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    args = _parser().parse_args([])
    assert args.config == Path(environment["POLYTTS_CONFIG"])
    assert args.uri == environment["POLYTTS_URI"]
    assert args.debug is False


def test_compose_ray_profiles() -> None:
    """The server with the Ray head, and a GPU worker node joining it (docs/ray.md):
    one image with the ray extra, the host's network, and a config placing engines on the
    worker's custom resource."""
    compose: Any = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    server, worker = compose["services"]["wyoming-polytts-ray"], compose["services"]["ray-worker"]
    assert (server["profiles"], worker["profiles"]) == (["ray"], ["ray-worker"])
    assert server["image"] == worker["image"] and server["build"] == worker["build"]
    assert "ray" in server["build"]["args"]["EXTRAS"].split(",")
    assert set(server["build"]["args"]["EXTRAS"].split(",")) <= _pyproject_extras()
    assert server["network_mode"] == worker["network_mode"] == "host"
    head, join = server["entrypoint"][-1], worker["entrypoint"][-1]
    assert "ray start --head --port=6379" in head and "--include-dashboard=false" in head
    assert head.endswith("exec wyoming-polytts")
    assert '--address="$$RAY_HEAD:6379"' in join and "--block" in join
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in server["volumes"]}
    config = load_config(REPO / mounted[server["environment"]["POLYTTS_CONFIG"]])
    assert config.settings.ray.address == "127.0.0.1:6379"
    resource = re.search(r"--resources='\{\"(\w+)\": \d+\}'", join)
    assert resource, join
    placed = [o for o in config.engine_options.values() if o.placement == "ray"]
    assert placed and all(resource[1] in o.ray.resources for o in placed)

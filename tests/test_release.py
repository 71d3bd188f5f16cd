"""A release's parts agree: one version (the package's) in the add-on and both changelogs,
and GitHub workflows that test every push and, on a version tag, publish the package and
the images the add-on and the README name.

The workflows cannot run here: actionlint checks them in ``make lint``; these tests check
what they do against the files they publish.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from wyoming_polytts import __version__

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github/workflows"
BUILDER = "home-assistant/builder/actions/"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _latest_entry(changelog: Path) -> str:
    headings = re.findall(r"^## (\S+)", changelog.read_text(encoding="utf-8"), re.M)
    assert headings, f"{changelog} has no release"
    return headings[0]


@pytest.fixture(scope="module")
def release() -> dict[str, Any]:
    data = _yaml(WORKFLOWS / "release.yml")
    assert isinstance(data, dict)
    return data


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = workflow[True]
    return triggers if isinstance(triggers, dict) else dict.fromkeys(triggers)


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job.get("steps", []) if step.get("uses", "").startswith(action)]


def _needs(jobs: dict[str, Any], name: str) -> set[str]:
    """Every job that ``name`` waits for, directly or through others."""
    direct = jobs[name].get("needs", [])
    direct = [direct] if isinstance(direct, str) else direct
    return set(direct).union(*(_needs(jobs, need) for need in direct))


# --- one version ---------------------------------------------------------------------


def test_one_version_everywhere() -> None:
    """The package's version (wyoming_polytts/__init__.py) is the add-on's, and the latest
    entry of both changelogs."""
    addon = _yaml(REPO / "addon/config.yaml")
    assert addon["version"] == __version__
    assert _latest_entry(REPO / "CHANGELOG.md") == __version__
    assert _latest_entry(REPO / "addon/CHANGELOG.md") == __version__
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "wyoming_polytts.__version__"
    }


# --- CI ----------------------------------------------------------------------------------


def test_ci_runs_the_readme_test_command_on_pushes_and_pull_requests() -> None:
    ci = _yaml(WORKFLOWS / "ci.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(_triggers(ci))
    (job,) = ci["jobs"].values()
    assert [step["run"] for step in job["steps"] if "run" in step] == ["make test"]
    assert "make test" in (REPO / "README.md").read_text(encoding="utf-8")
    # Root in a privileged Debian container with the Python the project is checked for.
    python = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert job["container"]["image"] == f"python:{python['python_version']}-bookworm"
    assert "--privileged" in job["container"]["options"]


# --- the release workflow --------------------------------------------------------------


def test_release_runs_on_version_tags_after_the_tests(release: dict[str, Any]) -> None:
    assert _triggers(release) == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {"contents": "read"}
    jobs = release["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    for name in ("pypi", "addon", "gpu-image"):
        assert {"version", "test"} <= _needs(jobs, name), name
    script = jobs["version"]["steps"][-1]["run"]
    assert "wyoming_polytts/__init__.py" in script and '"v${version}"' in script


def test_release_publishes_the_package_with_trusted_publishing(release: dict[str, Any]) -> None:
    jobs = release["jobs"]
    build = " ".join(step.get("run", "") for step in jobs["dist"]["steps"])
    assert "python -m build" in build and "twine check --strict" in build
    pypi = jobs["pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    assert pypi["environment"]["name"] == "pypi"
    assert pypi["environment"]["url"].startswith("https://pypi.org/project/wyoming-polytts/")
    assert _steps_using(pypi, "pypa/gh-action-pypi-publish@")
    assert "dist" in _needs(release["jobs"], "pypi")


def test_release_builds_the_images_the_addon_pulls(release: dict[str, Any]) -> None:
    addon = _yaml(REPO / "addon/config.yaml")
    jobs = release["jobs"]
    (matrix,) = _steps_using(jobs["addon-matrix"], BUILDER + "prepare-multi-arch-matrix@")
    inputs = matrix["with"]
    assert yaml.safe_load(inputs["architectures"]) == addon["arch"]
    assert inputs["registry-prefix"] == "${{ env.REGISTRY }}"
    published = f"{release['env']['REGISTRY']}/{{arch}}-{inputs['image-name']}"
    assert addon["image"] == published
    job = jobs["addon"]
    (build,) = _steps_using(job, BUILDER + "build-image@")
    assert build["with"]["context"] == "addon"
    # The Supervisor pulls <image>:<add-on version>; the image installs that release.
    assert "${{ needs.version.outputs.version }}" in build["with"]["image-tags"].splitlines()
    assert build["with"]["version"] == "${{ needs.version.outputs.version }}"
    assert "pypi" in _needs(jobs, "addon")
    assert job["permissions"]["packages"] == "write"


def test_release_pushes_the_gpu_image_to_ghcr(release: dict[str, Any]) -> None:
    job = release["jobs"]["gpu-image"]
    (build,) = _steps_using(job, "docker/build-push-action@")
    assert build["with"]["context"] == "." and build["with"]["push"] is True
    assert release["env"]["REGISTRY"].startswith("ghcr.io/")
    tags = build["with"]["tags"].splitlines()
    assert "${{ env.REGISTRY }}/wyoming-polytts-gpu:${{ needs.version.outputs.version }}" in tags
    (login,) = _steps_using(job, "docker/login-action@")
    assert login["with"]["registry"] == "ghcr.io"
    assert job["permissions"]["packages"] == "write"

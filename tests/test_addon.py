"""The Home Assistant add-on's files: the repository the Supervisor adds, metadata, options
schema, translations, s6 services.

No Docker engine runs here: the files are parsed and checked against each
other, against what the Supervisor accepts, and against the Python side
(``wyoming_polytts/addon_options.py``). The options mapping itself is tested in
test_addon_options.py, the images and linters in test_images.py.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any, get_args
from urllib.parse import urlparse

import pytest
import yaml

from wyoming_polytts import __version__
from wyoming_polytts.__main__ import EXAMPLE_CONFIG
from wyoming_polytts.addon_options import (
    MODELS_DIR,
    OPENAI_PORT,
    WYOMING_URI,
    AddonEngine,
    AddonOptions,
    LogLevel,
)

from .helpers import checkout_files

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "addon"
S6 = ADDON / "rootfs/etc/s6-overlay/s6-rc.d"
SCRIPTS = [S6 / "polytts/run", S6 / "polytts/finish", S6 / "discovery/run"]

# The option types the Supervisor accepts (its add-on options validator),
# each optionally followed by "?" (optional).
_SUPERVISOR_TYPE = re.compile(
    r"^(bool|email|url|port"
    r"|str(\(\d*,\d*\))?|password(\(\d*,\d*\))?|int(\(\d*,\d*\))?"
    r"|float(\([\d.]*,[\d.]*\))?|device(\(subsystem=[a-z]+\))?"
    r"|match\(.+\)|list\([^|()]+(\|[^|()]+)*\))\??$"
)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def addon_config() -> dict[str, Any]:
    data = _yaml(ADDON / "config.yaml")
    assert isinstance(data, dict)
    return data


# --- the add-on repository ---------------------------------------------------

ADDON_KEYS = {"name", "version", "slug", "description", "arch"}
"""What the Supervisor requires of an add-on's config (among other keys)."""


def test_repository_yaml_is_one_the_supervisor_accepts(addon_config: dict[str, Any]) -> None:
    """The Supervisor reads repository.yaml at the root (name required; url, maintainer)."""
    repository = _yaml(REPO / "repository.yaml")
    assert set(repository) == {"name", "url", "maintainer"}
    assert all(isinstance(value, str) and value.strip() for value in repository.values())
    url = urlparse(repository["url"])
    assert url.scheme == "https" and url.netloc == "github.com"
    assert addon_config["url"].startswith(repository["url"] + "/")


def test_the_supervisor_finds_one_addon_here(addon_config: dict[str, Any]) -> None:
    """It reads every config.{json,yaml,yml} of a clone (outside dot folders and rootfs) as
    an add-on; the project's configs are skipped with a warning (no add-on keys)."""
    paths = [PurePosixPath(name) for name in checkout_files(REPO)]
    found = [
        path
        for path in paths
        if re.fullmatch(r"config\.(json|ya?ml)", path.name)
        and not any(part.startswith(".") or part == "rootfs" for part in path.parts)
    ]
    addons = [path for path in found if set(_yaml(REPO / path) or {}) >= ADDON_KEYS]
    assert addons == [PurePosixPath("addon/config.yaml")]
    # The package's example (a link to config.yaml) is not read a second time.
    assert PurePosixPath("wyoming_polytts", EXAMPLE_CONFIG) not in found


# --- add-on metadata -------------------------------------------------------


def test_config_yaml_declares_the_addon(addon_config: dict[str, Any]) -> None:
    for key in ("name", "slug", "description", "url", "homeassistant"):
        assert isinstance(addon_config[key], str) and addon_config[key], key
    assert re.fullmatch(r"[a-z0-9_]+", addon_config["slug"])
    assert addon_config["version"] == __version__
    assert addon_config["arch"] == ["amd64", "aarch64"]
    assert addon_config["init"] is False
    assert addon_config["discovery"] == ["wyoming"]
    assert re.fullmatch(r"20\d\d\.\d+\.\d+", addon_config["homeassistant"])
    assert "{arch}" in addon_config["image"]


def test_ports_are_declared_and_described(addon_config: dict[str, Any]) -> None:
    wyoming_port = urlparse(WYOMING_URI).port
    ports = {f"{wyoming_port}/tcp", f"{OPENAI_PORT}/tcp"}
    assert set(addon_config["ports"]) == ports
    assert set(addon_config["ports_description"]) == ports
    translations = _yaml(ADDON / "translations/en.yaml")
    assert set(translations["network"]) == ports


def test_ingress_opens_the_web_page_on_the_openai_port(addon_config: dict[str, Any]) -> None:
    assert addon_config["ingress"] is True
    assert addon_config["ingress_port"] == OPENAI_PORT
    assert re.fullmatch(r"mdi:[a-z0-9-]+", addon_config["panel_icon"])
    assert addon_config["panel_title"].strip()


def test_folders_and_backups(addon_config: dict[str, Any]) -> None:
    maps = {entry["type"]: entry.get("read_only", True) for entry in addon_config["map"]}
    assert maps == {"share": False, "addon_config": False}
    # The Supervisor matches backup_exclude with PurePath.match against the full
    # path of each file and folder of /data; the model folder must match.
    host_path = PurePosixPath("/mnt/data/supervisor/addons/data/local_polytts")
    models = host_path / PurePosixPath(MODELS_DIR).relative_to("/data")
    assert any(models.match(pattern) for pattern in addon_config["backup_exclude"])
    assert not any(host_path.match(pattern) for pattern in addon_config["backup_exclude"])
    assert not any(
        (host_path / "options.json").match(pattern) for pattern in addon_config["backup_exclude"]
    )


def test_every_option_has_a_schema_entry_and_translation(addon_config: dict[str, Any]) -> None:
    options, schema = addon_config["options"], addon_config["schema"]
    assert set(options) == set(schema)
    translations = _yaml(ADDON / "translations/en.yaml")["configuration"]
    assert set(translations) == set(options)
    for name, text in translations.items():
        assert text["name"].strip() and text["description"].strip(), name


def test_schema_types_are_supervisor_types(addon_config: dict[str, Any]) -> None:
    for name, kind in addon_config["schema"].items():
        kinds = kind if isinstance(kind, list) else [kind]
        assert len(kinds) == 1, name
        assert _SUPERVISOR_TYPE.match(kinds[0]), f"{name}: {kinds[0]!r}"
    assert addon_config["schema"]["openai_api_key"].startswith("password")


def test_schema_choices_match_the_python_options(addon_config: dict[str, Any]) -> None:
    schema = addon_config["schema"]
    assert schema["engines"] == [f"list({'|'.join(get_args(AddonEngine))})"]
    assert schema["log_level"] == f"list({'|'.join(get_args(LogLevel))})"
    # The defaults shown in the add-on's configuration tab are the Python defaults.
    assert addon_config["options"] == asdict(AddonOptions())


def test_build_yaml_uses_home_assistant_debian_bases(addon_config: dict[str, Any]) -> None:
    build_from = _yaml(ADDON / "build.yaml")["build_from"]
    assert list(build_from) == addon_config["arch"]
    for arch, image in build_from.items():
        assert re.fullmatch(rf"ghcr\.io/home-assistant/{arch}-base-debian:[a-z0-9.]+", image)


# --- s6-overlay services ----------------------------------------------------


def _services() -> dict[str, str]:
    """Service name -> type; "user" is the base image's bundle, the add-on only fills it."""
    return {
        d.name: (d / "type").read_text().strip()
        for d in S6.iterdir()
        if d.is_dir() and d.name != "user"
    }


def test_s6_services_are_complete() -> None:
    services = _services()
    assert services == {"polytts": "longrun", "discovery": "oneshot"}
    assert sorted(p.name for p in (S6 / "user/contents.d").iterdir()) == ["discovery", "polytts"]
    for name in services:
        for dependency in (S6 / name / "dependencies.d").glob("*"):
            assert dependency.name in services, f"{name} depends on unknown {dependency.name}"
    assert [p.name for p in (S6 / "discovery/dependencies.d").iterdir()] == ["polytts"]
    up = (S6 / "discovery/up").read_text().strip()
    assert (ADDON / "rootfs" / up.lstrip("/")).is_file(), up
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), f"{script} is not executable"
        assert script.read_text().startswith("#!/command/with-contenv bashio\n"), script


def test_run_script_hands_the_options_file_to_the_server() -> None:
    run = (S6 / "polytts/run").read_text()
    assert re.search(r"^exec .*-m wyoming_polytts --options-file /data/options\.json$", run, re.M)


def test_discovery_announces_the_wyoming_port() -> None:
    script = (S6 / "discovery/run").read_text()
    port = re.search(r"^readonly port=(\d+)$", script, re.M)
    assert port and int(port[1]) == urlparse(WYOMING_URI).port
    assert "wyoming_polytts.healthcheck" in script
    assert 'bashio::discovery "wyoming"' in script
    assert 'uri "tcp://$(hostname):${port}"' in script

"""The manual (docs/, mkdocs.yml) and the README, its front page.

MkDocs checks the pages' own links with ``--strict`` (as ``make lint`` builds them); links to
the repository's files are absolute GitHub URLs, which MkDocs does not follow: these tests
check that each names a file of this checkout. The README is also PyPI's project page, so
its links are absolute too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
README_MAX_LINES = 260
"""The front page stays short: the rest belongs in docs/."""

REPO_URL = re.compile(
    r"https://github\.com/wyoming-polytts/wyoming-polytts/(?:blob|tree)/main/([^)#\s>]+)"
)
MKDOCS_BUILD = (sys.executable, "-m", "mkdocs", "build", "--strict")
LINK = re.compile(r"\]\(([^)\s]+)\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
"""Inline links' targets and reference definitions' targets."""


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MKDOCS_BUILD, "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def _nav_pages(nav: list[object]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages += _nav_pages(value)
        else:
            assert isinstance(value, str), entry
            pages.append(value)
    return pages


def _links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [inline or defined for inline, defined in LINK.findall(text)]


def test_the_manual_builds_strictly(tmp_path: Path) -> None:
    result = _build(REPO / "mkdocs.yml", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "operations" / "reliability" / "index.html").is_file()
    assert (tmp_path / "engines" / "piper" / "index.html").is_file()


def test_a_stray_page_or_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """What the strict build is for: a copy of the manual with a page left out of the nav,
    a link to a missing page and one to a missing anchor must not build."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy2(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "docs" / "stray.md").write_text("# Not in the nav\n", encoding="utf-8")
    with (tmp_path / "docs" / "configuration.md").open("a", encoding="utf-8") as page:
        page.write("\n[gone](engines/gone.md) and [nowhere](engines/piper.md#nowhere)\n")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    for problem in ("stray.md", "'engines/gone.md'", "'engines/piper.md#nowhere'"):
        assert problem in result.stderr, result.stderr[-3000:]


def test_make_lint_builds_the_manual_strictly() -> None:
    """The lint target's build is the one tested here; --quiet would hide the warnings that
    --strict turns into a failure (the build then passes with broken links)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    (build,) = [line for line in lint.splitlines() if "mkdocs" in line]
    assert "mkdocs build --strict" in build
    assert not {"-q", "--quiet"} & set(build.split())


def test_every_page_is_in_the_nav_once() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["theme"]["name"] == "material"
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav))
    assert set(nav) == {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}


def test_links_to_the_repository_name_its_files() -> None:
    pages = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
    checked = 0
    for page in pages:
        for target in _links(page):
            match = REPO_URL.match(target)
            if match:
                assert (REPO / match[1]).exists(), f"{page.name}: {target}"
                checked += 1
    assert checked >= 20  # the README's links into docs/ alone are more


def test_the_readme_is_a_short_front_page() -> None:
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    for target in _links(readme):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            assert (REPO / target.split("#")[0]).exists(), target  # a relative link
    # The two commands, and the GPL dependency named where every user reads.
    assert "make run" in text and "make test" in text
    assert "piper-tts is GPL-3.0-or-later" in text
    # Every page of the manual is one click from the front page.
    linked = {match[1] for target in _links(readme) if (match := REPO_URL.match(target))}
    pages = {f"docs/{page.relative_to(DOCS).as_posix()}" for page in DOCS.rglob("*.md")}
    assert pages - linked == set()

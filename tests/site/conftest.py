"""Fixtures that build the site, or a tiny synthetic one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sitebuild import Post, build


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real content/ built once into a temporary directory."""
    logging.getLogger("pelican").setLevel(logging.WARNING)
    return build(OUTPUT_PATH=str(tmp_path_factory.mktemp("site") / "output"))


@pytest.fixture
def tiny_site(tmp_path: Path) -> tuple[Path, Post]:
    """A content directory of synthetic posts, and a helper that writes one.

    ``write("a.md", "Title: A", ..., body="text")`` writes header lines, a blank
    line, then the body; ``raw=`` writes the file exactly as given.
    """
    content = tmp_path / "content"
    content.mkdir()

    def write(name: str, *header: str, body: str = "Some text.\n", raw: str | None = None) -> Path:
        path = content / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(raw if raw is not None else "\n".join(header) + "\n\n" + body)
        return path

    return content, write

"""A tiny site of its own per test: content/, a link to kmod/, snippets/, output/."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTS = Path(__file__).resolve().parent / "posts"


@dataclass
class MiniSite:
    root: Path

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def snippets(self) -> Path:
        return self.root / "snippets"

    @property
    def output(self) -> Path:
        return self.root / "output"

    def add(self, name: str, text: str | None = None) -> Path:
        path = self.content / name
        path.write_text(text if text is not None else (POSTS / name).read_text())
        return path

    def build(self, **kwargs):
        from kblog_build import build_site

        overrides = {
            "PATH": str(self.content),
            "KBLOG_KERNELS": ["6.1"],
            "SERIES": {},
            "CACHE_CONTENT": False,
            "LOAD_CONTENT_CACHE": False,
        }
        overrides.update(kwargs.pop("overrides", {}))
        return build_site(ROOT / "pelicanconf.py", self.output, overrides, **kwargs)


@pytest.fixture
def minisite(tmp_path: Path) -> MiniSite:
    (tmp_path / "content").mkdir()
    (tmp_path / "kmod").symlink_to(ROOT / "kmod")
    return MiniSite(tmp_path)


def tree_bytes(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its content: equal means byte for byte the same."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def copy_of_posts(tmp_path: Path) -> Path:
    dest = tmp_path / "posts"
    shutil.copytree(POSTS, dest)
    return dest

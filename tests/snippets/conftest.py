"""Fixtures for the snippet tests: a mini site per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from minisite import POSTS, ROOT, MiniSite


@pytest.fixture
def minisite(tmp_path: Path) -> MiniSite:
    (tmp_path / "content").mkdir()
    (tmp_path / "kmod").symlink_to(ROOT / "kmod")
    return MiniSite(tmp_path)


@pytest.fixture
def copy_of_posts(tmp_path: Path) -> Path:
    dest = tmp_path / "posts"
    shutil.copytree(POSTS, dest)
    return dest

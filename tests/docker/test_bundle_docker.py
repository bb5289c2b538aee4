"""A reader with Docker: the page's commands reproduce the post in the sandbox container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from minisite import ROOT, MiniSite, run_reproduce_box

pytestmark = [pytest.mark.docker, pytest.mark.vm]


def test_the_box_commands_reproduce_the_post_in_docker(runner_image: str, tmp_path: Path) -> None:
    site = MiniSite(tmp_path / "site")
    site.content.mkdir(parents=True)
    (site.root / "kmod").symlink_to(ROOT / "kmod")
    site.add("second.md")
    site.build()  # captured with the tests' local backend
    env = {**os.environ, "KBLOG_BACKEND": "docker"}
    shown = run_reproduce_box(
        site.output / "second.html", site.output / "bundles" / "second.tar.gz", tmp_path / "r", env
    )
    assert "container" in shown  # it ran in the sandbox image, not on this host
    assert "matches the published capture" in shown

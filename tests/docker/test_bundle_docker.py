"""A reader with Docker: the page's commands reproduce the post in the sandbox container."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from htmltree import parse
from minisite import ROOT, MiniSite

pytestmark = [pytest.mark.docker, pytest.mark.vm]


def test_the_box_commands_reproduce_the_post_in_docker(runner_image: str, tmp_path: Path) -> None:
    site = MiniSite(tmp_path / "site")
    site.content.mkdir(parents=True)
    (site.root / "kmod").symlink_to(ROOT / "kmod")
    site.add("second.md")
    site.build()  # captured with the tests' local backend
    (box,) = parse(site.output / "second.html").find_all("section", "kb-reproduce")
    (pre,) = box.find_all("pre")
    commands = [line.removeprefix("$ ") for line in pre.text().splitlines()]
    reader = tmp_path / "reader"
    reader.mkdir()
    shutil.copy(site.output / "bundles" / "second.tar.gz", reader)
    env = {**os.environ, "KBLOG_BACKEND": "docker"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        ["bash", "-euc", "\n".join(commands)],
        cwd=reader,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "container" in done.stdout  # it ran in the sandbox image, not on this host
    assert "matches the published capture" in done.stdout

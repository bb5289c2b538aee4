"""The 'Reproduce this post' box: its commands, run as a reader would, reproduce the post."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from htmltree import parse
from minisite import MiniSite

from runner import config

pytestmark = pytest.mark.vm


def box_commands(page: Path) -> list[str]:
    (box,) = parse(page).find_all("section", "kb-reproduce")
    (pre,) = box.find_all("pre")
    return [line.removeprefix("$ ") for line in pre.text().splitlines()]


def test_the_box_commands_reproduce_the_post(minisite: MiniSite, tmp_path: Path) -> None:
    minisite.add("every-tag.md")
    minisite.build()
    bundle = minisite.output / "bundles" / "every-tag.tar.gz"
    first = bundle.read_bytes()
    minisite.build()
    assert bundle.read_bytes() == first  # an unchanged post gives the same bundle
    commands = box_commands(minisite.output / "every-tag.html")
    assert commands[-1] == ".venv/bin/python -m runner.reproduce"
    reader = tmp_path / "reader"
    reader.mkdir()
    shutil.copy(bundle, reader)  # what the page's download link gives
    # The reader's machine: only the bundle. The guest kernel and image cache is
    # shared so the test does not debootstrap again; the backend is the tests' own.
    env = {**os.environ, "KBLOG_CACHE": str(config.cache_dir())}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        ["bash", "-euc", "\n".join(commands)],
        cwd=reader,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matches the published capture" in done.stdout
    assert "step 16/16" in done.stdout.replace("\r", "\n")

"""Invoke tasks for the kernel-module blog: build, serve, test and the sandbox runner."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from invoke import task

ROOT = Path(__file__).resolve().parent
CONTENT = ROOT / "content"
OUTPUT = ROOT / "output"
SETTINGS = ROOT / "pelicanconf.py"
PUBLISH_SETTINGS = ROOT / "publishconf.py"
PYTHON = sys.executable


@task
def build(c, publish=False):
    """Build the site into output/, running every stale snippet in the sandbox."""
    from plugins.kblog_build import build_site

    build_site(settings=PUBLISH_SETTINGS if publish else SETTINGS, output=OUTPUT)


@task
def clean(c):
    """Remove the built site and build caches (never snippets/: they are committed)."""
    for path in (OUTPUT, ROOT / "build"):
        shutil.rmtree(path, ignore_errors=True)


@task
def test(c, k="", vm=True):
    """Run the whole test suite and ruff; --no-vm skips tests that boot a guest."""
    c.run(f"{PYTHON} -m ruff check .", pty=False)
    args = [PYTHON, "-m", "pytest"]
    if k:
        args += ["-k", k]
    if not vm:
        args += ["-m", "not vm"]
    c.run(" ".join(args), pty=False)

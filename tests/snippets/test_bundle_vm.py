"""The 'Reproduce this post' box: its commands, run as a reader would, reproduce the post."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from minisite import MiniSite, run_reproduce_box

from runner import config

pytestmark = pytest.mark.vm


def test_the_box_commands_reproduce_the_post(minisite: MiniSite, tmp_path: Path) -> None:
    minisite.add("every-tag.md")
    minisite.build()
    bundle = minisite.output / "bundles" / "every-tag.tar.gz"
    first = bundle.read_bytes()
    minisite.build()
    assert bundle.read_bytes() == first  # an unchanged post gives the same bundle
    # The guest kernel and image cache is shared, so the test does not debootstrap
    # again; the backend is the tests' own (local).
    env = {**os.environ, "KBLOG_CACHE": str(config.cache_dir())}
    shown = run_reproduce_box(minisite.output / "every-tag.html", bundle, tmp_path / "r", env)
    assert "matches the published capture" in shown
    assert "step 16/16" in shown


def test_a_post_that_builds_the_kernel_reproduces_from_its_bundle(
    minisite: MiniSite, tmp_path: Path
) -> None:
    """The bundle's kmod/ (the patch) and kernel/ (the config fragment) reach the local
    backend: the kernel is patched, built (incrementally, in the shared kernel cache)
    and booted from them."""
    (minisite.root / "kernel").symlink_to(config.KERNEL_DIR)
    minisite.add("kernel-post.md")
    minisite.build()
    bundle = minisite.output / "bundles" / "kernel-post.tar.gz"
    env = {**os.environ, "KBLOG_CACHE": str(config.cache_dir())}
    shown = run_reproduce_box(minisite.output / "kernel-post.html", bundle, tmp_path / "r", env)
    assert "matches the published capture" in shown

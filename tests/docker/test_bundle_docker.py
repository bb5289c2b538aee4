"""A reader with Docker: the page's commands reproduce the post in the sandbox container."""

from __future__ import annotations

import os
import tarfile
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


def test_a_post_that_builds_the_kernel_reproduces_from_its_bundle_in_docker(
    runner_image: str, tmp_path: Path
) -> None:
    """The bundle carries kmod/ (the patch) and kernel/ (the config fragment), and the
    container patches, builds and boots the kernel from them: incrementally, once the
    kblog-kernel-build volume holds a build (tests/docker/test_kernel_docker.py)."""
    site = MiniSite(tmp_path / "site")
    site.content.mkdir(parents=True)
    (site.root / "kmod").symlink_to(ROOT / "kmod")
    (site.root / "kernel").symlink_to(ROOT / "kernel")
    site.add("kernel-post.md")
    site.build()  # captured with the tests' local backend, in this host's kernel cache
    bundle = site.output / "bundles" / "kernel-post.tar.gz"
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert "kernel-post/kernel/guest.config" in names
    assert "kernel-post/kmod/syscall/0001-kblog_hello-system-call.patch" in names
    env = {**os.environ, "KBLOG_BACKEND": "docker"}
    shown = run_reproduce_box(site.output / "kernel-post.html", bundle, tmp_path / "r", env)
    assert "container" in shown
    assert "matches the published capture" in shown

"""A reader with Docker: a real post's page commands reproduce it in the sandbox container."""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path

import minisite
import pytest
from minisite import MiniSite, run_reproduce_box

pytestmark = [pytest.mark.docker, pytest.mark.vm]


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory, runner_image: str) -> MiniSite:
    """The site's posts and their published captures (minisite.real_site). (With the
    engine up and the image made: the reader's commands need both.)"""
    site, report = minisite.real_site(tmp_path_factory.mktemp("real-site"))
    print(f"the site's build ran {report.vm_runs} posts in a VM")  # 0 while captures are fresh
    return site


def reproduce_in_docker(site: MiniSite, page: str, post: str, reader: Path) -> str:
    """What the page's 'Reproduce this post' commands print, run with the docker backend."""
    env = {**os.environ, "KBLOG_BACKEND": "docker"}
    bundle = site.output / "bundles" / f"{post}.tar.gz"
    return run_reproduce_box(site.output / page, bundle, reader, env)


def test_episode_2_reproduces_from_its_bundle_in_docker(
    real_site: MiniSite, tmp_path: Path
) -> None:
    page, post = "kernel-segfaults.html", "ep2-kernel-segfaults"
    shown = reproduce_in_docker(real_site, page, post, tmp_path)
    assert re.search(r"^container \w+ started \(", shown, re.M), shown  # not on this host
    assert "reproducing ep2-kernel-segfaults (27 steps) on Linux 6.1" in shown
    assert "matches the published capture (volatile values aside)" in shown
    assert "differs" not in shown


def test_episode_3_builds_its_kernel_from_its_bundle_in_docker(
    real_site: MiniSite, tmp_path: Path
) -> None:
    """The bundle carries kmod/ (the patch) and kernel/ (the config fragment), and the
    container patches, builds and boots the kernel from them: incrementally, once the
    kblog-kernel-build volume holds a build (tests/docker/test_kernel_docker.py)."""
    bundle = real_site.output / "bundles" / "ep3-system-call.tar.gz"
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert "ep3-system-call/kernel/guest.config" in names
    assert "ep3-system-call/kmod/syscall/kblog_hello-6.1.patch" in names
    shown = reproduce_in_docker(real_site, "system-call.html", "ep3-system-call", tmp_path)
    assert re.search(r"^container \w+ started \(", shown, re.M), shown
    assert "matches the published capture (volatile values aside)" in shown
    assert "differs" not in shown


def test_episode_4_reproduces_from_its_bundle_in_docker(
    real_site: MiniSite, tmp_path: Path
) -> None:
    """The bundle carries kernel/debug.config too: the container builds the debug
    kernel (or reuses it from the kblog-kernel-build volume), stops it in gdb and
    reads it with drgn, and the run matches the page."""
    bundle = real_site.output / "bundles" / "ep4-looking-inside.tar.gz"
    with tarfile.open(bundle) as tar:
        assert "ep4-looking-inside/kernel/debug.config" in tar.getnames()
    shown = reproduce_in_docker(real_site, "looking-inside.html", "ep4-looking-inside", tmp_path)
    assert re.search(r"^container \w+ started \(", shown, re.M), shown
    assert "matches the published capture (volatile values aside)" in shown
    assert "differs" not in shown

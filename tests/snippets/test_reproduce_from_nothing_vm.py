"""A reader with no kernel built: episode 3's bundle reproduces from an empty kernel
cache, its kernel unpacked and built from nothing, and then again warm, both times
matching the published capture (exit 0). The published capture was made in a kept
workspace: what a fresh and a kept build print differently must not read as drift."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import minisite
import pytest
from minisite import MiniSite, run_reproduce_box

from runner import config

pytestmark = pytest.mark.vm

MATCH = "matches the published capture (volatile values aside)"


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory) -> MiniSite:
    """The site's posts and their published captures (minisite.real_site): no VM runs."""
    site, report = minisite.real_site(tmp_path_factory.mktemp("real-site"))
    assert report.vm_runs == 0
    return site


def test_episode_3_reproduces_from_an_empty_kernel_cache_and_again_warm(
    real_site: MiniSite, tmp_path: Path
) -> None:
    """About 4 minutes on 2 cores: linux-source-6.1 unpacked and built clean. The
    guest images and Debian's .debs stay shared (KBLOG_CACHE): they are not what a
    kernel post's reproduction is about."""
    empty = tmp_path / "kernel-cache"
    env = {
        **os.environ,
        "KBLOG_CACHE": str(config.cache_dir()),
        config.KERNEL_CACHE_ENV: str(empty),
    }
    bundle = real_site.output / "bundles" / "ep3-system-call.tar.gz"
    page = real_site.output / "system-call.html"
    try:
        first = run_reproduce_box(page, bundle, tmp_path / "first", env)
        assert MATCH in first and "differs" not in first, first
        built = list((empty / "kernel-build").iterdir())
        assert len(built) == 1, built  # the run's own workspace, made from nothing
        again = run_reproduce_box(page, bundle, tmp_path / "again", env)
        assert MATCH in again and "differs" not in again, again
        assert list((empty / "kernel-build").iterdir()) == built  # the same one, kept
    finally:
        shutil.rmtree(empty, ignore_errors=True)  # 1.7 GB: not for pytest's kept temp dirs

"""A small tmpfs for a test to fill: what a full disk does to a build or the cache."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the block (root only: skipped else)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazily: a process the test started may still hold a file open there.
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(mount: Path, leave: int = 0) -> Path:
    """Take all of `mount`'s free space but `leave` bytes; remove the file to free it."""
    st = os.statvfs(mount)
    filler = mount / ".filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(1, st.f_bavail * st.f_frsize - leave))
    finally:
        os.close(fd)
    return filler

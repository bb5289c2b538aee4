"""A full disk under the cache while a guest artifact is built: a clear error naming
it, nothing half-made left for a later run to use, and a later run with room makes it.
(The snapshot's case boots a guest: tests/runner/test_cache_full_vm.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fulldisk import fill, tmpfs

from runner.guest import image


def test_an_initramfs_on_a_full_cache_fails_naming_it_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("busybox") is None or shutil.which("cpio") is None:
        pytest.skip("busybox and cpio build the initramfs")
    with tmpfs(tmp_path / "cache", "8m") as cache:
        monkeypatch.setenv("KBLOG_KERNEL_CACHE", str(cache))
        (cache / "images").mkdir()
        filler = fill(cache, leave=256 * 1024)  # busybox alone is 2 MB
        with pytest.raises(image.ImageError) as failed:
            image.builtin_initramfs(log=lambda msg: None)
        message = str(failed.value)
        assert f"{cache}/images/initrd-builtin-" in message, message
        assert "No space left on device" in message, message
        assert list((cache / "images").iterdir()) == []  # no temporary file or directory
        filler.unlink()
        made = image.builtin_initramfs(log=lambda msg: None)
        assert made.parent == cache / "images" and made.stat().st_size > 1 << 20

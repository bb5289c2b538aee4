"""The one place that names the guest kernels, the guest userland and the cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The series' modules: the tree a post's build steps start in, unless told otherwise.
KMOD = ROOT / "kmod"


@dataclass(frozen=True)
class Kernel:
    """A Debian kernel the posts run on, named by its ABI (the `uname -r`)."""

    name: str  # short label shown to readers, e.g. "6.1"
    release: str  # uname -r, e.g. "6.1.0-56-amd64"

    @property
    def image_package(self) -> str:
        return f"linux-image-{self.release}-unsigned"

    @property
    def headers_package(self) -> str:
        return f"linux-headers-{self.release}"


# Debian drops an ABI from its mirror when a new one is published: bump these then.
KERNELS: dict[str, Kernel] = {
    "6.1": Kernel(name="6.1", release="6.1.0-56-amd64"),
    "6.12": Kernel(name="6.12", release="6.12.107+deb12-amd64"),
}
DEFAULT_KERNEL = "6.1"

# What the guest userland holds besides debootstrap's minbase: what the posts type.
GUEST_SUITE = "bookworm"
GUEST_PACKAGES = ("python3", "procps", "kmod", "util-linux", "sudo")
GUEST_USER = "user"
GUEST_HOME = f"/home/{GUEST_USER}"

# Kernel modules the initramfs loads to reach the root disk and the agent port;
# their dependencies are added from modules.dep. crc32c is only a soft dependency
# of ext4 (the checksum driver is found through the crypto API), so it is named.
INITRAMFS_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_console",
    "crc32c_generic",
    "ext4",
    "overlay",
)

GUEST_MEMORY_MB = 512


def cache_dir() -> Path:
    """Where downloaded packages and built guest images live (never committed)."""
    return Path(os.environ.get("KBLOG_CACHE", ROOT / "build")).resolve()


def kernel(name: str | None = None) -> Kernel:
    """The kernel called `name` (a label or a release), or the default one."""
    key = name or DEFAULT_KERNEL
    for k in KERNELS.values():
        if key in (k.name, k.release):
            return k
    known = ", ".join(KERNELS)
    raise KeyError(f"unknown kernel {key!r}; configured kernels: {known}")

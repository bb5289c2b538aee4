"""The one place that names the guest kernels, the guest userland and the cache."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The series' modules: the tree a post's build steps start in, unless told otherwise.
KMOD = ROOT / "kmod"
# The guest kernel's config fragment, for posts that build the kernel (~/kernel inside).
KERNEL_DIR = ROOT / "kernel"


def kernel_dir_for(kmod: Path) -> Path:
    """The kernel/ that goes with a kmod/ tree: the one beside it, in the repository as
    in a post's bundle. A run's captures depend on it, and its bundle carries it."""
    return kmod.parent / KERNEL_DIR.name


@dataclass(frozen=True)
class Kernel:
    """A Debian kernel the posts run on, named by its ABI (the `uname -r`), and the
    version of its series' linux-source package, which posts that build the kernel
    patch and build (runner/kernels/source.py)."""

    name: str  # short label shown to readers, e.g. "6.1"
    release: str  # uname -r, e.g. "6.1.0-56-amd64"
    source: str = ""  # linux-source-<name>'s Debian version, e.g. "6.1.192-3"

    @property
    def source_package(self) -> str:
        return f"linux-source-{self.name}"

    @property
    def image_package(self) -> str:
        return f"linux-image-{self.release}-unsigned"

    @property
    def headers_package(self) -> str:
        return f"linux-headers-{self.release}"


# The kernel series, one entry each: the site's kernel tabs, `invoke verify`'s cells
# and the Docker image's kernels all follow this table; the default one comes first.
# Debian drops an ABI, or a source version, from its mirror when a new one is published:
# bump these then, with `invoke kernels --bump` (runner/kernels/abi.py rewrites the
# `release=` and `source=` values below).
KERNELS: dict[str, Kernel] = {
    "6.1": Kernel(name="6.1", release="6.1.0-56-amd64", source="6.1.192-3"),
    "6.12": Kernel(name="6.12", release="6.12.107+deb12-amd64", source="6.12.118-1~deb12u1"),
}
DEFAULT_KERNEL = "6.1"

# What the guest userland holds besides debootstrap's minbase: what the posts type.
GUEST_SUITE = "bookworm"
GUEST_PACKAGES = ("python3", "procps", "kmod", "util-linux", "sudo", "strace")


@dataclass(frozen=True)
class Wheel:
    """A Python package for the guest that Debian's stable release has only too old:
    one wheel from PyPI, pinned by its file and its digest, unpacked into the guest's
    /usr/local (runner/guest/image.py). Its name is the pip package's."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str


# drgn, for a post that reads the running kernel's data structures from inside the guest
# (episode 4): Debian 12's python3-drgn is 0.0.22. This wheel is built for CPython 3.11,
# bookworm's python3, and carries its own libelf, libdw and libkdumpfile.
GUEST_WHEELS = (
    Wheel(
        name="drgn",
        version="0.3.0",
        filename="drgn-0.3.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        url="https://files.pythonhosted.org/packages/f3/19/"
        "3eb95fcafea830a74c43216536cf80e0171a649c2c9005bf919521c1c5c9/"
        "drgn-0.3.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        sha256="5e887717f59682cbc53ce14038f7fcf39b5f5690d8a1b6e91b90306b27bf13eb",
    ),
)
# The guest's python3 (bookworm's), whose site directory the wheels go to.
GUEST_PYTHON = "python3.11"
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
# The transfer disk's size (runner/guest/vm.py): a put larger than this goes in parts.
TRANSFER_DISK_MB = 1024


def cache_dir() -> Path:
    """Where downloaded packages and built guest images live (never committed)."""
    explicit = os.environ.get("KBLOG_CACHE")
    if explicit:
        return Path(explicit).resolve()
    # Per user, not per checkout: a fresh clone (a CI run) reuses the kernels,
    # guest images, snapshots and built kernels of the last one.
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base) / "kblog").resolve()


KERNEL_CACHE_ENV = "KBLOG_KERNEL_CACHE"


def kernel_cache_dir() -> Path:
    """Where kernels built from source are kept: Debian's source unpacked, the build
    workspaces, the images they made and what boots them (initramfs, saved guests).

    The cache itself, unless KBLOG_KERNEL_CACHE names another directory: the Docker
    image's cache is read-only, and its containers keep these in a volume.
    """
    explicit = os.environ.get(KERNEL_CACHE_ENV)
    return Path(explicit).resolve() if explicit else cache_dir()


# Runs on other ABIs of the configured series than the pinned ones (`invoke verify
# --newest`, a reproduction whose pin Debian dropped): "6.1=6.1.0-57-amd64,6.12=...".
# An environment variable, so that it reaches every thread and subprocess of a run.
RELEASES_ENV = "KBLOG_KERNEL_RELEASES"
# The same for the linux-source versions: "6.1=6.1.193-1,6.12=6.12.120-1~deb12u1".
SOURCES_ENV = "KBLOG_KERNEL_SOURCES"


def parse_releases(text: str, variable: str = RELEASES_ENV) -> dict[str, str]:
    """The label -> release (or source version) map of a RELEASES_ENV (SOURCES_ENV)
    value; ValueError if malformed."""
    releases: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, sep, release = item.partition("=")
        if not sep or not release:
            raise ValueError(f"{variable}: {item!r} is not LABEL=VERSION")
        if label not in KERNELS:
            known = ", ".join(KERNELS)
            raise ValueError(f"{variable}: unknown kernel {label!r}; configured: {known}")
        # A release of another series would be labelled wrongly on every page.
        if not release.startswith(f"{label}."):
            raise ValueError(f"{variable}: {release!r} is not a version of Linux {label}")
        releases[label] = release
    return releases


def format_releases(releases: Mapping[str, str]) -> str:
    return ",".join(f"{label}={release}" for label, release in releases.items())


def kernels() -> dict[str, Kernel]:
    """The configured kernels, with the releases RELEASES_ENV and the source versions
    SOURCES_ENV replace (if set)."""
    chosen = parse_releases(os.environ.get(RELEASES_ENV, ""))
    sources = parse_releases(os.environ.get(SOURCES_ENV, ""), SOURCES_ENV)
    return {
        label: replace(k, release=chosen.get(label, k.release), source=sources.get(label, k.source))
        for label, k in KERNELS.items()
    }


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """Run the body with `name` set to `value` in the environment, then as it was."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def releases_override(releases: Mapping[str, str], variable: str = RELEASES_ENV) -> Iterator[None]:
    """Run the body with these releases (or, with SOURCES_ENV, source versions)
    instead of the pinned ones."""
    merged = {**parse_releases(os.environ.get(variable) or "", variable), **releases}
    parse_releases(format_releases(merged), variable)  # refuse a bad one before anything runs
    with environment_variable(variable, format_releases(merged)):
        yield


def kernel(name: str | None = None) -> Kernel:
    """The kernel called `name` (a label or a release), or the default one."""
    key = name or DEFAULT_KERNEL
    for k in kernels().values():
        if key in (k.name, k.release):
            return k
    known = ", ".join(KERNELS)
    raise KeyError(f"unknown kernel {key!r}; configured kernels: {known}")

"""Debian's kernel source, unpacked once into the cache.

Episode 3 patches and builds the kernel itself, from the same source a reader gets
with `apt install linux-source-6.1`. The package only carries a tarball; its tree is
unpacked once per package version, under a temporary name renamed into place when
complete, and never written to afterwards: builds put their objects elsewhere (O=).

The package is the one apt offers, unless KBLOG_KERNEL_SOURCE_DEB names a .deb of
it: the Docker image keeps one (`stage()`), since its containers have neither apt's
lists nor a network. The version is then the one that file says.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner import config, memo
from runner.kernels import debian

# Not runner.events.Log: the Docker image stages the package with the files it needs alone.
Log = Callable[[str], None]

SERIES = "6.1"
PACKAGE = f"linux-source-{SERIES}"
# The tree's name inside the tarball, and where the package puts that tarball.
TREE_NAME = f"linux-source-{SERIES}"
TARBALL = Path("usr") / "src" / f"{TREE_NAME}.tar.xz"
DONE_STAMP = ".kblog-complete"
SEAL_STAMP = ".kblog-sealed"
DEB_ENV = "KBLOG_KERNEL_SOURCE_DEB"


class SourceError(RuntimeError):
    """The kernel source could not be fetched or unpacked."""


@dataclass(frozen=True)
class KernelSource:
    """An unpacked, pristine kernel tree."""

    package: str
    version: str  # the Debian package version, e.g. 6.1.192-3
    tree: Path  # .../linux-source-6.1: holds the top Makefile
    unpack_seconds: float = 0.0  # 0 when found in the cache


def kept_deb() -> Path | None:
    """The .deb that KBLOG_KERNEL_SOURCE_DEB names, if it is set; it must exist."""
    named = os.environ.get(DEB_ENV)
    if not named:
        return None
    deb = Path(named)
    if not deb.is_file():
        raise SourceError(f"{DEB_ENV}={named}: no such file")
    return deb


@functools.cache
def candidate_version() -> str:
    """The version of the linux-source package fetch() unpacks: the kept .deb's, or
    the one apt offers."""
    deb = kept_deb()
    if deb is not None:
        return debian.deb_version(deb)
    return offered_version()


# apt's answer, asked through runner/kernels/debian.py.
OFFERED = memo.Memo("apt-offered", "runner.kernels.debian", ("runner.kernels.debian",))


def _offered_key() -> str:
    return OFFERED.key([PACKAGE, *memo.stamps(debian.apt_inputs())])


def offered_version() -> str:
    """The version of the package apt offers, kept between builds until apt's lists,
    configuration or installed packages change: apt-cache takes about half a second,
    and every build keys the posts that build the kernel by this version."""
    found = OFFERED.get(_offered_key())
    if isinstance(found, str) and found:
        return found
    version = debian.show(PACKAGE)["Version"]
    # Keyed after the question: show() refreshes missing lists, which changes them.
    OFFERED.put(_offered_key(), version)
    return version


def stage(dest: Path, version: str = "", log: Log = print) -> str:
    """Download the linux-source package of `version` (if empty, the one apt offers)
    to `dest`, for KBLOG_KERNEL_SOURCE_DEB to name later (the Docker image's build
    does, with the version the host's apt offers); returns its version."""
    offered = debian.show(PACKAGE)["Version"]  # fetches apt's lists where there are none
    wanted = version or offered
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=dest.parent) as tmp:
        try:
            deb = debian.download(PACKAGE, Path(tmp), version=wanted)
        except debian.PackageError as exc:
            raise SourceError(
                f"{PACKAGE} {wanted} cannot be fetched here (apt here offers {offered}; "
                f"an outdated apt list where the version was chosen?): {exc}"
            ) from exc
        got = debian.deb_version(deb)
        if got != wanted:
            raise SourceError(f"apt-get download {PACKAGE}={wanted} gave {got}")
        log(f"keeping {deb.name} ({deb.stat().st_size >> 20} MB) as {dest}")
        deb.chmod(0o644)
        os.replace(deb, dest)
    return got


def host_version() -> str:
    """The version posts that build the kernel are keyed by on this host, or "" where
    its apt offers no such package (no apt, or not Debian 12)."""
    try:
        return candidate_version()
    except (debian.PackageError, OSError):
        return ""


def source_dir(version: str) -> Path:
    """Where the tree of package version `version` lives (beside the built kernels)."""
    return config.kernel_cache_dir() / "kernel-source" / version


def fetch(log: Log = print) -> KernelSource:
    """The unpacked source of the candidate linux-source package, unpacking it if needed."""
    version = candidate_version()
    final = source_dir(version)
    tree = final / TREE_NAME
    if (final / DONE_STAMP).exists():
        return KernelSource(PACKAGE, version, tree)
    final.parent.mkdir(parents=True, exist_ok=True)
    # One unpacker per version: the others wait for it instead of unpacking 1.3 GB again.
    with open(final.parent / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / DONE_STAMP).exists():
            return KernelSource(PACKAGE, version, tree)
        started = time.monotonic()
        log(f"fetching and unpacking {PACKAGE} {version} (about 140 MB, once)")
        _unpack(version, final)
        return KernelSource(PACKAGE, version, tree, time.monotonic() - started)


def seal(tree: Path, owner: int | None = None) -> float:
    """When the tree was sealed: from then on, none of its files may change.

    The workspaces of runner/kernels/build.py are hard links to its files, which
    patch and editors replace rather than write. A file written in place would
    change the pristine source too; its date, later than the seal, shows it. Run
    as root, the files are first given to the sandbox's user (`owner`): patch
    gives the file it writes its original's owner, and inside the sandbox only
    that user's id exists. (Read-only modes would protect them, but patch warns
    about each read-only file it changes, and a post would show it.)
    """
    stamp = tree.parent / f"{SEAL_STAMP}-{owner if owner is not None else 'self'}"
    if not stamp.exists():
        if owner is not None:
            for path in tree.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    os.chown(path, owner, owner)
        stamp.write_text("")
    return stamp.stat().st_mtime


def _unpack(version: str, final: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        deb_root = tmp / "deb"
        kept = kept_deb()
        if kept is not None:
            debian.extract(kept, deb_root)
            got = debian.deb_version(kept)
        else:
            got = debian.unpack(PACKAGE, deb_root, config.cache_dir() / "debs")
        if got != version:
            raise SourceError(f"{PACKAGE}: apt now offers {got}, not {version}; run again")
        tarball = deb_root / TARBALL
        if not tarball.is_file():
            raise SourceError(f"{PACKAGE} {version} holds no {TARBALL}")
        # --no-same-owner: the tree belongs to whoever unpacked it, whatever the tarball says.
        argv = ["tar", "-xJf", str(tarball), "-C", str(tmp), "--no-same-owner"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SourceError(f"unpacking {tarball.name} failed: {proc.stderr.strip()[-2000:]}")
        if not (tmp / TREE_NAME / "Makefile").is_file():
            raise SourceError(f"{tarball.name} did not hold {TREE_NAME}/Makefile")
        shutil.rmtree(deb_root)
        (tmp / DONE_STAMP).write_text(version + "\n")
        tmp.chmod(0o755)  # mkdtemp made it private; sandboxed builds read it
        # The stamp travels with the rename: a tree in place is a complete one.
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

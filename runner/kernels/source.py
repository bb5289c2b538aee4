"""Debian's kernel source of each kernel series, unpacked once into the cache.

Posts that build the kernel patch and build the source of the series they run on,
the package a reader gets with `apt install linux-source-6.1` (or -6.12), at the
version runner/config.py pins beside the series' ABI (`invoke kernels --bump` moves
both). The package only carries a tarball; its tree is unpacked once per package
version, under a temporary name renamed into place when complete, and never written
to afterwards: builds put their objects elsewhere (O=).

The pinned version is what apt fetches, unless KBLOG_KERNEL_SOURCE_DEBS names a
directory of kept .debs (linux-source-6.1.deb, ...): the Docker image keeps them
(`stage()`), since its containers have neither apt's lists nor a network. No apt
call is made where the tree is unpacked already: the pin says the version.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner import config
from runner.kernels import debian

# Not runner.events.Log: the Docker image stages the package with the files it needs alone.
Log = Callable[[str], None]

DONE_STAMP = ".kblog-complete"
SEAL_STAMP = ".kblog-sealed"
DEB_ENV = "KBLOG_KERNEL_SOURCE_DEBS"


class SourceError(RuntimeError):
    """The kernel source could not be fetched or unpacked."""


@dataclass(frozen=True)
class KernelSource:
    """An unpacked, pristine kernel tree."""

    package: str  # linux-source-6.1
    version: str  # the Debian package version, e.g. 6.1.192-3
    tree: Path  # .../linux-source-6.1: holds the top Makefile
    unpack_seconds: float = 0.0  # 0 when found in the cache


def tree_name(kernel: config.Kernel) -> str:
    """The tree's name inside the tarball (linux-source-6.1), as the package's."""
    return kernel.source_package


def tarball(kernel: config.Kernel) -> Path:
    """Where the package puts its tarball."""
    return Path("usr") / "src" / f"{tree_name(kernel)}.tar.xz"


def kept_deb(kernel: config.Kernel) -> Path | None:
    """The kept .deb of `kernel`'s source if KBLOG_KERNEL_SOURCE_DEBS is set; it must exist."""
    named = os.environ.get(DEB_ENV)
    if not named:
        return None
    deb = Path(named) / f"{kernel.source_package}.deb"
    if not deb.is_file():
        raise SourceError(f"{DEB_ENV}={named}: no {deb.name} in it")
    return deb


def version(kernel: config.Kernel) -> str:
    """The linux-source version posts that build the kernel build on `kernel`: the pin."""
    if not kernel.source:
        raise SourceError(f"kernel {kernel.name}: no linux-source version is pinned (source=)")
    return kernel.source


def newest_offered(kernel: config.Kernel) -> str:
    """The newest version of `kernel`'s linux-source that apt's lists offer."""
    return debian.show(kernel.source_package)["Version"]


def gone(kernel: config.Kernel, detail: str) -> SourceError:
    """The one line for a pinned source apt cannot fetch: the newest it offers, the bump."""
    try:
        newest = f"the newest it offers is {newest_offered(kernel)}"
    except (debian.PackageError, OSError):
        newest = "apt offers no version of it"
    return SourceError(
        f"Debian no longer offers {kernel.source_package} {kernel.source} (pinned for "
        f"kernel {kernel.name}): {newest}; move the pin with `invoke kernels --bump` "
        f"({detail})"
    )


def stage(dest: Path, kernel: config.Kernel, log: Log = print) -> str:
    """Download `kernel`'s pinned linux-source to the directory `dest`, as the .deb
    KBLOG_KERNEL_SOURCE_DEBS finds there (the Docker image's build does); its version."""
    wanted = version(kernel)
    dest.mkdir(parents=True, exist_ok=True)
    debian.refresh_lists()  # an image build starts with none
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=dest) as tmp:
        try:
            deb = debian.download(kernel.source_package, Path(tmp), version=wanted)
        except debian.PackageError as exc:
            raise gone(kernel, str(exc).splitlines()[0]) from None
        got = debian.deb_version(deb)
        if got != wanted:
            raise SourceError(f"apt-get download {kernel.source_package}={wanted} gave {got}")
        final = dest / f"{kernel.source_package}.deb"
        log(f"keeping {deb.name} ({deb.stat().st_size >> 20} MB) as {final}")
        deb.chmod(0o644)
        os.replace(deb, final)
    return got


def source_dir(version: str) -> Path:
    """Where the tree of package version `version` lives (beside the built kernels)."""
    return config.kernel_cache_dir() / "kernel-source" / version


def fetch(kernel: config.Kernel, log: Log = print) -> KernelSource:
    """The unpacked source of `kernel`'s pinned linux-source, unpacking it if needed."""
    wanted = version(kernel)
    final = source_dir(wanted)
    tree = final / tree_name(kernel)
    found = KernelSource(kernel.source_package, wanted, tree)
    if (final / DONE_STAMP).exists():
        return found
    final.parent.mkdir(parents=True, exist_ok=True)
    # One unpacker per version: the others wait for it instead of unpacking 1.3 GB again.
    with open(final.parent / f".{wanted}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / DONE_STAMP).exists():
            return found
        started = time.monotonic()
        log(f"fetching and unpacking {kernel.source_package} {wanted} (about 150 MB, once)")
        _unpack(kernel, final)
        return dataclasses.replace(found, unpack_seconds=time.monotonic() - started)


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


def _unpack(kernel: config.Kernel, final: Path) -> None:
    wanted = version(kernel)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        deb_root = tmp / "deb"
        kept = kept_deb(kernel)
        if kept is not None:
            debian.extract(kept, deb_root)
            got = debian.deb_version(kept)
        else:
            try:
                got = debian.unpack(
                    kernel.source_package, deb_root, config.cache_dir() / "debs", version=wanted
                )
            except debian.PackageError as exc:
                raise gone(kernel, str(exc).splitlines()[0]) from None
        if got != wanted:
            raise SourceError(f"{kernel.source_package}: got {got}, not the pinned {wanted}")
        packed = deb_root / tarball(kernel)
        if not packed.is_file():
            raise SourceError(f"{kernel.source_package} {wanted} holds no {tarball(kernel)}")
        # --no-same-owner: the tree belongs to whoever unpacked it, whatever the tarball says.
        argv = ["tar", "-xJf", str(packed), "-C", str(tmp), "--no-same-owner"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SourceError(f"unpacking {packed.name} failed: {proc.stderr.strip()[-2000:]}")
        if not (tmp / tree_name(kernel) / "Makefile").is_file():
            raise SourceError(f"{packed.name} did not hold {tree_name(kernel)}/Makefile")
        shutil.rmtree(deb_root)
        (tmp / DONE_STAMP).write_text(wanted + "\n")
        tmp.chmod(0o755)  # mkdtemp made it private; sandboxed builds read it
        # The stamp travels with the rename: a tree in place is a complete one.
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

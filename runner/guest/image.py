"""Build what a guest boots from: kernel, initramfs and a read-only root disk.

Each artifact is built into a temporary path and renamed into place when done, so a
crash never leaves a half-built artifact that a later run would trust. Artifacts are
named by a hash of their inputs, so any change to an input builds a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import lzma
import math
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from runner import config, sources
from runner.kernels import abi as kernels
from runner.kernels import debian

HERE = Path(__file__).resolve().parent
INIT_SCRIPT = HERE / "init"
AGENT_DIR = HERE / "agent"
AGENT_SITE = AGENT_DIR / "site"  # modules for the guest's site-packages
# The root disk is read-only (writes go to a tmpfs overlay), so it needs no free
# space beyond ext4's own: its size follows the userland's, plus this margin.
ROOT_IMAGE_SLACK = 1.25
ROOT_IMAGE_EXTRA_MB = 64
STALE_AFTER = 14 * 86400  # seconds: older superseded root disks and userlands are removed

# Not runner.events.Log: the image builds guest artifacts from this file alone.
Log = Callable[[str], None]


class ImageError(RuntimeError):
    """A guest artifact could not be built."""


@dataclass(frozen=True)
class GuestArtifacts:
    """Everything QEMU needs to boot one kernel with our userland."""

    kernel: config.Kernel
    kernel_version: str  # the Debian package version, e.g. 6.1.192-2
    vmlinuz: Path
    initrd: Path
    root_image: Path
    identity: str  # hash of all of the above: part of every freeze key
    # Where what is made from them (runner/guest/snapshot.py's saved guest) is kept: the
    # cache, or for a kernel built from source the kernel cache, writable in a container.
    cache: Path = field(default_factory=config.cache_dir)
    # For a built kernel, the workspace that built it: two posts' kernels may share a
    # release, and each keeps its own saved guest (runner/guest/snapshot.py).
    lineage: str = ""


def _run(argv: list[str], what: str, **kwargs: object) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ImageError(f"{what} failed ({' '.join(argv[:3])} ...):\n{tail}")


def _publish(tmp: Path, final: Path) -> Path:
    """Move a finished artifact into place; a concurrent builder may have won."""
    # mkstemp and mkdtemp make them private; any user who runs guests reads them
    # (the Docker image's runner is not the root that built them).
    tmp.chmod(0o755 if tmp.is_dir() else 0o644)
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
    return final


def _drop_stale(directory: Path, pattern: str, keep: Path) -> None:
    """Remove what `pattern` matches in `directory`, but `keep`, if it was made more
    than STALE_AFTER ago: a root disk (160 MB) or a userland (170 MB) that an older
    agent or package list needed; without this each change of either left one
    behind for good. Recent ones stay, for another checkout that may still use
    them; an old one still in use is made again (seconds; a running guest keeps its
    open file)."""
    cutoff = time.time() - STALE_AFTER
    for old in directory.glob(pattern):
        if old == keep or old.name.startswith(".tmp"):
            continue
        try:
            if old.lstat().st_mtime >= cutoff:
                continue
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        except OSError:
            continue  # another runner removed it first, or it is not ours to remove


@contextlib.contextmanager
def _own_packages(kernel: config.Kernel) -> Iterator[None]:
    """Where Debian dropped the kernel's own package, say which ABI replaces it."""
    try:
        yield
    except debian.NoSuchPackage as exc:
        if exc.package in (kernel.image_package, kernel.headers_package):
            raise kernels.gone(kernel, exc.package) from None
        raise


def kernel_tree(kernel: config.Kernel, log: Log = print) -> tuple[Path, str]:
    """The unpacked kernel image package: (its root, its Debian version)."""
    cache = config.cache_dir()
    final = cache / "kernels" / kernel.release
    stamp = final / ".version"
    if stamp.exists():
        return final, stamp.read_text().strip()
    log(f"fetching {kernel.image_package} from Debian (about 70 MB)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        with _own_packages(kernel):
            version = debian.unpack(kernel.image_package, tmp, cache / "debs")
        # modules.dep is made at install time; make it for the unpacked tree.
        _run(["depmod", "-b", str(tmp), kernel.release], "depmod")
        (tmp / ".version").write_text(version + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, final), version


def headers_root(kernel: config.Kernel, log: Log = print) -> Path:
    """A root holding the guest kernel's headers and kbuild tools where Debian puts them
    (usr/src/linux-headers-*, usr/lib/linux-kbuild-*, lib/modules/<release>/build), as
    unpacked from the packages, untouched: the build sandbox mounts them in place."""
    with _cache_lock():
        return _headers_root(kernel, log)


def _headers_root(kernel: config.Kernel, log: Log) -> Path:
    installed = Path("/usr/src") / f"linux-headers-{kernel.release}"
    if os.environ.get("KBLOG_INSTALLED_HEADERS") and (installed / "Makefile").is_file():
        return Path("/")  # the packages are installed for real (the docker image)
    cache = config.cache_dir()
    final = cache / "kernel-headers" / kernel.release
    if (final / ".version").exists():
        return final
    log(f"fetching {kernel.headers_package} and its kbuild tools from Debian")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        with _own_packages(kernel):
            packages = [kernel.headers_package] + [
                dep
                for dep in debian.depends(kernel.headers_package)
                if dep.startswith(("linux-headers-", "linux-kbuild-"))
            ]
            versions = [debian.unpack(pkg, tmp, cache / "debs") for pkg in packages]
        (tmp / ".version").write_text(versions[0] + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, final)


def rootfs(log: Log = print) -> Path:
    """A debootstrapped Debian userland with our user; shared by every kernel.

    With KBLOG_GUEST_ROOTFS set, a userland installed beforehand is used instead of
    debootstrap (the docker image installs one in a build stage).
    """
    prepared = os.environ.get("KBLOG_GUEST_ROOTFS")
    if prepared:
        return _prepared_rootfs(Path(prepared), log)
    cache = config.cache_dir()
    key = sources.digest(
        [config.GUEST_SUITE, *config.GUEST_PACKAGES, *_wheel_pins(), config.GUEST_USER, "rootfs-3"]
    )
    final = cache / f"rootfs-{key}"
    if final.exists():
        return final
    if os.geteuid() != 0:
        raise ImageError(
            "building the guest userland needs root (debootstrap, chroot): run as root, "
            "or use the docker backend (KBLOG_BACKEND=docker), whose image carries it"
        )
    log("building the guest userland with debootstrap (about a minute, once)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-rootfs-", dir=cache))
    try:
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(config.GUEST_PACKAGES)}",
                config.GUEST_SUITE,
                str(tmp),
            ],
            "debootstrap",
        )
        _configure_rootfs(tmp, log)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _drop_stale(cache, "rootfs-*", final)
    return _publish(tmp, final)


def _prepared_rootfs(src: Path, log: Log) -> Path:
    """A copy of the userland at `src`, configured as rootfs() configures its own.

    Keyed by its package database, so a changed package makes a new copy; `src`
    itself is never written to.
    """
    if not (src / "etc" / "passwd").is_file():
        raise ImageError(f"KBLOG_GUEST_ROOTFS={src}: not a root filesystem (no etc/passwd)")
    cache = config.cache_dir()
    key = sources.digest(
        ["prepared", _packages_digest(src), *_wheel_pins(), config.GUEST_USER, "rootfs-4"]
    )
    final = cache / f"rootfs-{key}"
    if final.exists():
        return final
    log(f"configuring the guest userland prepared in {src}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-rootfs-", dir=cache))
    try:
        _run(["cp", "-a", f"{src}/.", str(tmp)], "copying the prepared userland")
        _configure_rootfs(tmp, log)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _drop_stale(cache, "rootfs-*", final)
    return _publish(tmp, final)


def _packages_digest(root: Path) -> str:
    """A hash of the userland's package database: which packages, at which versions.

    World-readable, so an unprivileged runner (the container's) computes the same
    key as the root that prepared the userland; a listing of every file could not.
    """
    return sources.digest([(root / "var" / "lib" / "dpkg" / "status").read_bytes()])


def _configure_rootfs(root: Path, log: Log = print) -> None:
    _install_wheels(root, log)
    user = config.GUEST_USER
    _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", user], "useradd")
    sudoers = root / "etc" / "sudoers.d" / "kblog"
    # A throwaway guest of one user: no pty of sudo's own (it guards a terminal from
    # a command run as another user) and no PAM session (no limits are set, nothing
    # logs). Without them sudo execs the command instead of forking and waiting on
    # it: 40 ms less per sudo under TCG, where a post runs a dozen.
    rules = [
        f"Defaults:{user} !use_pty, !pam_session, !pam_setcred",
        f"{user} ALL=(ALL) NOPASSWD: ALL",
    ]
    sudoers.write_text("".join(rule + "\n" for rule in rules))
    sudoers.chmod(0o440)
    (root / "etc" / "hostname").write_text("kblog\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 kblog\n")
    # Package caches and docs only make the image bigger.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(root / junk, ignore_errors=True)
        (root / junk).mkdir(parents=True, exist_ok=True)


def _wheel_pins() -> list[str]:
    """What names the guest's wheels in a userland's key: a new pin is a new userland."""
    return [f"{wheel.filename}={wheel.sha256}" for wheel in config.GUEST_WHEELS]


def fetch_wheel(wheel: config.Wheel, log: Log = print) -> Path:
    """The pinned wheel, from the cache or else from PyPI, checked against its digest
    either way (a cached file could be cut short; a mirror could serve another)."""
    final = config.cache_dir() / "wheels" / wheel.filename
    if final.is_file() and _sha256(final) == wheel.sha256:
        return final
    log(f"fetching {wheel.name} {wheel.version} from PyPI ({wheel.filename})")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-wheel-", dir=final.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(wheel.url, timeout=120) as reply:
            shutil.copyfileobj(reply, out)
        got = _sha256(tmp)
        if got != wheel.sha256:
            raise ImageError(f"{wheel.url}: sha256 {got}, but runner/config.py pins {wheel.sha256}")
    except OSError as exc:  # no network, a full disk: what was fetched, and why
        tmp.unlink(missing_ok=True)
        raise ImageError(f"{wheel.url}: cannot fetch it: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _publish(tmp, final)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _install_wheels(root: Path, log: Log) -> None:
    """Install the pinned wheels into the userland at `root` as pip would, without pip
    (bookworm's python3 has none): the files unpacked into /usr/local's site directory,
    a script in /usr/local/bin per console entry point, and the modules compiled (the
    guest's root is read-only, so Python could not cache its bytecode there)."""
    site = root / "usr" / "local" / "lib" / config.GUEST_PYTHON / "dist-packages"
    if not (root / "usr" / "bin" / config.GUEST_PYTHON).exists():
        raise ImageError(f"the guest userland has no {config.GUEST_PYTHON} for its wheels")
    bindir = root / "usr" / "local" / "bin"
    for wheel in config.GUEST_WHEELS:
        with zipfile.ZipFile(fetch_wheel(wheel, log)) as archive:
            archive.extractall(site)
            entry_points = f"{wheel.name}-{wheel.version}.dist-info/entry_points.txt"
            scripts = _console_scripts(archive.read(entry_points).decode())
        bindir.mkdir(parents=True, exist_ok=True)
        for name, target in scripts.items():
            module, _, func = target.partition(":")
            script = bindir / name
            script.write_text(
                f"#!/usr/bin/{config.GUEST_PYTHON}\n"
                "import sys\n"
                f"from {module} import {func}\n"
                f"sys.exit({func}())\n"
            )
            script.chmod(0o755)
    guest_site = "/" + str(site.relative_to(root))
    _run(
        ["chroot", str(root), config.GUEST_PYTHON, "-m", "compileall", "-q", guest_site],
        "compileall",
    )


def _console_scripts(entry_points: str) -> dict[str, str]:
    """The [console_scripts] of a wheel's entry_points.txt: name -> "module:function"."""
    scripts: dict[str, str] = {}
    section = ""
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "console_scripts" and "=" in line:
            name, _, target = line.partition("=")
            scripts[name.strip()] = target.strip()
    return scripts


def _disk_usage_mb(root: Path) -> float:
    """What the files under `root` take on disk, as du counts it."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in [*files, *_dirs]:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total / (1 << 20)


def root_image(log: Log = print) -> Path:
    """The root disk: the userland plus the guest agent, as a read-only ext4 image."""
    base = rootfs(log)
    # The size follows from the userland and the agent, already in the key: walking
    # the userland here would count less for a user who cannot read all of it.
    sizing = [str(ROOT_IMAGE_SLACK), str(ROOT_IMAGE_EXTRA_MB)]
    key = sources.digest([base.name, sources.tree_digest(AGENT_DIR), *sizing])
    final = config.cache_dir() / "images" / f"root-{key}.img"
    if final.exists():
        return final
    log("assembling the guest root disk")
    agent_dest = base / "opt" / "kblog"
    shutil.rmtree(agent_dest, ignore_errors=True)  # a previous image's agent
    usage = _disk_usage_mb(base) + _disk_usage_mb(AGENT_DIR)
    size_mb = 64 * math.ceil((usage * ROOT_IMAGE_SLACK + ROOT_IMAGE_EXTRA_MB) / 64)
    final.parent.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(*sources.IGNORE, AGENT_SITE.name)
    shutil.copytree(AGENT_DIR, agent_dest, ignore=ignore)
    # Every python3 of the guest imports what AGENT_SITE holds (its .pth says so).
    site = base / "usr" / "local" / "lib" / config.GUEST_PYTHON / "dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    for path in AGENT_SITE.iterdir():
        if not sources.ignored(path.name):
            shutil.copy2(path, site / path.name)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-root-", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "kblog-root",
                "-d",
                str(base),
                str(tmp),
                f"{size_mb}M",
            ],
            "mkfs.ext4",
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _drop_stale(final.parent, "root-*.img", final)
    return _publish(tmp, final)


def module_closure(modroot: Path, wanted: Iterable[str]) -> list[Path]:
    """The .ko files for `wanted` and their dependencies, in load order."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modroot / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[_module_name(mod)] = mod
    builtin = {
        _module_name(line) for line in (modroot / "modules.builtin").read_text().splitlines()
    }
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps[mod]:
            visit(dep)
        order.append(mod)

    for name in wanted:
        if name in by_name:
            visit(by_name[name])
        elif name.replace("_", "-") not in builtin and name not in builtin:
            raise ImageError(f"kernel module {name} is neither built in nor in modules.dep")
    return [modroot / mod for mod in order]


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.split(".ko")[0].replace("-", "_")


def initramfs(kernel: config.Kernel, log: Log = print) -> Path:
    """A busybox initramfs that loads the disk and agent drivers, then hands over."""
    ktree, version = kernel_tree(kernel, log)
    modroot = ktree / "lib" / "modules" / kernel.release
    busybox = shutil.which("busybox")
    if busybox is None:
        raise ImageError("busybox is missing: install Debian's busybox-static")
    # The package version and the wanted list fix the module closure, so a built
    # initramfs is found without the module tree (the Docker image drops it).
    key = sources.digest(
        [version, INIT_SCRIPT.read_bytes(), Path(busybox).read_bytes(), *config.INITRAMFS_MODULES]
    )
    final = config.cache_dir() / "images" / f"initrd-{kernel.release}-{key}.cpio"
    if final.exists():
        return final
    modules = module_closure(modroot, config.INITRAMFS_MODULES)
    return _pack_initramfs(final, modules, busybox)


def _pack_initramfs(final: Path, modules: list[Path], busybox: str) -> Path:
    """Write the cpio of busybox, our init and `modules` (loaded in that order) to `final`."""
    try:
        return _pack(final, modules, busybox)
    except OSError as exc:  # a full cache: the artifact meant and why, not a traceback
        raise ImageError(f"{final}: cannot write it: {exc.strerror}") from None


def _pack(final: Path, modules: list[Path], busybox: str) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent) as staging_name:
        staging = Path(staging_name)
        for d in ("bin", "dev", "proc", "sys", "newroot", "lib/modules", "etc"):
            (staging / d).mkdir(parents=True)
        shutil.copy2(busybox, staging / "bin" / "busybox")
        shutil.copy2(INIT_SCRIPT, staging / "init")
        names = []
        for ko in modules:
            name = _module_name(ko.name) + ".ko"
            data = ko.read_bytes()
            # busybox insmod takes plain ELF; Debian compresses modules on newer kernels.
            if ko.name.endswith(".xz"):
                data = lzma.decompress(data)
            elif ko.name.endswith(".zst"):
                raise ImageError(f"{ko.name}: zstd-compressed modules are not supported")
            (staging / "lib" / "modules" / name).write_bytes(data)
            names.append(name)
        # Empty when there is nothing to load: init reads it line by line.
        (staging / "etc" / "modules").write_text("".join(f"{name}\n" for name in names))
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-initrd-", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                proc = subprocess.run(
                    ["cpio", "--quiet", "-o", "-H", "newc", "--owner", "0:0"],
                    input="\n".join([".", *files]).encode(),
                    stdout=out,
                    stderr=subprocess.PIPE,
                    cwd=staging,
                    check=False,
                )
            if proc.returncode != 0:  # cpio's message names no file: name the one meant
                raise ImageError(f"{final}: cpio failed: {proc.stderr.decode().strip()}")
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)  # never left to fill the disk more
            raise
    return _publish(Path(tmp_name), final)


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """One builder of cache artifacts at a time, across threads and processes.

    root_image() rewrites the agent inside the shared userland before mkfs; two
    builders at once (parallel posts after an agent change) would mix them up.
    """
    cache = config.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if not os.access(cache, os.W_OK):
        # Read-only (the sandbox container's): nobody builds into it, nothing to lock.
        yield
        return
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare(kernel: config.Kernel, log: Log = print) -> GuestArtifacts:
    """Build (or find in the cache) everything needed to boot `kernel`."""
    with _cache_lock():
        ktree, version = kernel_tree(kernel, log)
        initrd = initramfs(kernel, log)
        root = root_image(log)
    vmlinuz = ktree / "boot" / f"vmlinuz-{kernel.release}"
    identity = sources.digest([kernel.release, version, initrd.name, root.name])
    return GuestArtifacts(kernel, version, vmlinuz, initrd, root, identity, config.cache_dir())


# --- kernels built from source (runner/kernels/build.py) --------------------------------


def builtin_initramfs(log: Log = print) -> Path:
    """The initramfs for a kernel with every driver built in: the same init, no modules.

    It depends on no kernel, so every built kernel shares it; it is kept with them.
    """
    busybox = shutil.which("busybox")
    if busybox is None:
        raise ImageError("busybox is missing: install Debian's busybox-static")
    key = sources.digest(["no-modules", INIT_SCRIPT.read_bytes(), Path(busybox).read_bytes()])
    final = config.kernel_cache_dir() / "images" / f"initrd-builtin-{key}.cpio"
    if final.exists():
        return final
    log("packing the initramfs for kernels with built-in drivers")
    return _pack_initramfs(final, [], busybox)


def prepare_built(
    kernel: config.Kernel, version: str, vmlinuz: Path, log: Log = print, lineage: str = ""
) -> GuestArtifacts:
    """What boots `vmlinuz`, a kernel built with all our drivers in, with the root disk
    that the stock kernels boot. `version` names its source (the package version)."""
    with _cache_lock():
        initrd = builtin_initramfs(log)
        root = root_image(log)
    # The image's own bytes: a rebuilt kernel keeps its release but is another guest.
    identity = sources.digest(
        [kernel.release, version, vmlinuz.read_bytes(), initrd.name, root.name]
    )
    return GuestArtifacts(
        kernel, version, vmlinuz, initrd, root, identity, config.kernel_cache_dir(), lineage
    )

"""A guest kernel built from Debian's source, a config fragment and patches.

Episode 3's posts patch the kernel, build it and boot it. Here that is done the way
a reader would, in the build sandbox (runner/sandbox.py): the source is shown
read-only at ~/linux, the objects go to ~/build (`make O=~/build`), and:

    make tinyconfig; make kvm_guest.config
    scripts/kconfig/merge_config.sh -m -O ~/build ~/build/.config ~/guest.config
    make olddefconfig
    make -j<cores> bzImage

A build directory is kept in the cache per (source package version, fragment), so
building again after a patch changed compiles only what the change reaches.
Patches are applied outside the sandbox to a copy of the pristine tree made of hard
links: each file a patch names becomes a copy of its own first, so nothing writes
through a link into the pristine tree, and the sandbox sees the copy read-only.
Files a previous patch touched are restored with a fresh mtime, so make sees them
as changed both ways.

`build()` returns the bzImage (copied out of the build directory, named by its
hash); `guest_artifacts()` pairs it with the stock root disk and an initramfs that
loads no modules, ready for runner/vm.py and runner/snapshot.py.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner import config, guest_image, kernel_source, sandbox, sources
from runner.events import Log

FRAGMENT = config.ROOT / "kernel" / "guest.config"
# Bump when the steps below change what a build directory holds.
RECIPE = "kbuild-1"
# Inside the sandbox, under the guest user's home.
INSIDE_SOURCE = "linux"
INSIDE_BUILD = "build"
INSIDE_FRAGMENT = "guest.config"
APPLIED = "applied.json"  # which patches the hard-link tree carries, and their files
TAIL_LINES = 30  # output lines kept for an error message

Progress = Callable[[float, str], None]  # (seconds since the step began, latest line)


class KernelBuildError(RuntimeError):
    """The kernel could not be configured, patched or built."""


@dataclass(frozen=True)
class KernelSpec:
    """What to build: a config fragment, and patches applied in order (`patch -p1`)."""

    fragment: Path = FRAGMENT
    patches: tuple[Path, ...] = ()


@dataclass(frozen=True)
class BuiltKernel:
    source_version: str  # the linux-source package version
    release: str  # the built kernel's `uname -r`
    image: Path  # its bzImage, a copy that later builds leave alone
    build_dir: Path  # the O= directory, kept for the next build
    seconds: dict[str, float] = field(default_factory=dict)  # what each phase took


# --- pure parts: config fragments, keys, patches ---------------------------------------

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str]:
    """The options a .config or fragment sets: {name: value}, "n" for "is not set"."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            options[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            options[m.group(1)] = "n"
    return options


def unmet_options(fragment: str, dotconfig: str) -> list[str]:
    """The fragment's settings that .config does not carry, each saying what it got.

    olddefconfig drops an option silently when a dependency is missing; this is where
    that shows. An option the fragment turns off is met when .config lacks it.
    """
    have = parse_config(dotconfig)
    unmet = []
    for name, wanted in parse_config(fragment).items():
        got = have.get(name, "n")
        if got != wanted:
            shown = "not set" if got == "n" else got
            unmet.append(f"{name}={wanted} did not survive olddefconfig (.config: {shown})")
    return unmet


def build_key(source_version: str, fragment: str) -> str:
    """The build directory's key; patches are left out, so they rebuild incrementally."""
    return sources.digest([RECIPE, source_version, fragment])


def patches_digest(patches: Sequence[bytes]) -> str:
    return sources.digest(["patches", *patches])


def patched_files(patch: str) -> list[str]:
    """The tree-relative paths a unified diff (for `patch -p1`) creates or changes."""
    files: list[str] = []
    for line in patch.splitlines():
        if not line.startswith(("--- ", "+++ ")):
            continue
        path = line[4:].split("\t")[0].strip()
        if path == "/dev/null" or "/" not in path:
            continue
        rel = path.split("/", 1)[1]  # -p1: drop a/ or b/
        if rel.startswith("/") or ".." in rel.split("/"):
            # Restoring it later would reach outside the tree.
            raise KernelBuildError(f"a patch names {path}, outside the kernel tree")
        if rel not in files:
            files.append(rel)
    return files


# --- the patched tree ------------------------------------------------------------------


def prepare_tree(pristine: Path, tree: Path, patches: Sequence[Path]) -> None:
    """Make `tree` the pristine source with `patches` applied, touching as little as
    possible: an unchanged patch set leaves every mtime as it was."""
    texts = [p.read_bytes() for p in patches]
    digest = patches_digest(texts)
    record_path = tree.parent / APPLIED
    if not tree.exists():
        tmp = tree.with_name(f".tmp-{os.getpid()}-{tree.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(["cp", "-al", str(pristine), str(tmp)], "linking the source tree")
        os.rename(tmp, tree)
        record_path.write_text(json.dumps({"digest": patches_digest([]), "files": []}))
    record = json.loads(record_path.read_text())
    if record["digest"] == digest:
        return
    wanted = [f for text in texts for f in patched_files(text.decode(errors="replace"))]
    # Written before the tree changes: a run that dies while restoring or patching
    # leaves a record that matches no patch set, so the next one starts over.
    touched = sorted(set(record["files"]) | set(wanted))
    record_path.write_text(json.dumps({"digest": "incomplete", "files": touched}))
    for rel in record["files"]:
        _restore(pristine, tree, rel)
    for rel in wanted:
        _unlink_from_pristine(tree / rel)
    for patch in patches:
        # --fuzz=0: a patch applies exactly or not at all, so a post shows what it built.
        argv = ["patch", "-p1", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch"]
        _run([*argv, "-d", str(tree), "-i", str(patch.resolve())], f"applying {patch.name}")
    record_path.write_text(json.dumps({"digest": digest, "files": sorted(set(wanted))}))


def _restore(pristine: Path, tree: Path, rel: str) -> None:
    """Put back the pristine file, as a copy stamped now: older than the objects built
    from the patched one, it would not be compiled again."""
    target = tree / rel
    target.unlink(missing_ok=True)
    if (pristine / rel).exists():
        shutil.copy2(pristine / rel, target)
        os.utime(target)


def _unlink_from_pristine(path: Path) -> None:
    """Replace a hard link into the pristine tree by a copy of its own."""
    if path.is_symlink() or not path.is_file() or path.stat().st_nlink == 1:
        return
    tmp = path.with_name(f".tmp-{path.name}")
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-TAIL_LINES:])
        raise KernelBuildError(f"{what} failed:\n{tail}")


# --- the build -------------------------------------------------------------------------


def _quiet_progress(elapsed: float, line: str) -> None:
    pass


def build(
    spec: KernelSpec | None = None,
    progress: Progress = _quiet_progress,
    log: Log = print,
    jobs: int | None = None,
) -> BuiltKernel:
    """The kernel `spec` describes, built (or brought up to date) in the cache."""
    spec = spec or KernelSpec()
    source = kernel_source.fetch(log)
    fragment = spec.fragment.read_text()
    key = build_key(source.version, fragment)
    top = config.cache_dir() / "kernel-build" / key
    top.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    if source.unpack_seconds:
        seconds["unpack"] = source.unpack_seconds
    # One build per directory at a time; other keys build in parallel.
    with open(top / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        tree = top / "src" / "linux"
        tree.parent.mkdir(exist_ok=True)
        prepare_tree(source.tree, tree, spec.patches)
        seconds["patch"] = time.monotonic() - started
        layout = _layout(top, tree)
        home = layout.tree
        (home / INSIDE_SOURCE).mkdir(parents=True, exist_ok=True)  # the mount point
        (home / INSIDE_BUILD).mkdir(exist_ok=True)
        (home / INSIDE_FRAGMENT).write_text(fragment)
        as_root = os.geteuid() == 0
        sandbox.prepare(layout, as_root=as_root)
        env = _build_env(source.tree)
        stamp = home / INSIDE_BUILD / ".kblog-configured"
        if not stamp.exists():
            started = time.monotonic()
            log(f"configuring the kernel ({spec.fragment.name} over tinyconfig)")
            _configure(layout, as_root, env, progress)
            dotconfig = (home / INSIDE_BUILD / ".config").read_text()
            unmet = unmet_options(fragment, dotconfig)
            if unmet:
                raise KernelBuildError(f"{spec.fragment}: " + "; ".join(unmet))
            stamp.write_text(RECIPE + "\n")
            seconds["configure"] = time.monotonic() - started
        started = time.monotonic()
        obj = home / INSIDE_BUILD
        clean = not (obj / "vmlinux").exists()
        log(f"building bzImage from {source.package} {source.version}" + (clean * " (minutes)"))
        cores = jobs or len(os.sched_getaffinity(0))  # what nproc says
        _sandboxed(layout, as_root, env, [*_make(layout), f"-j{cores}", "bzImage"], progress)
        seconds["make"] = time.monotonic() - started
        release = (obj / "include" / "config" / "kernel.release").read_text().strip()
        image = _keep_image(obj / "arch" / "x86" / "boot" / "bzImage", release)
    return BuiltKernel(source.version, release, image, obj, seconds)


def _layout(top: Path, tree: Path) -> sandbox.Layout:
    # The reader builds on the stock guest: its headers, its `uname -r`.
    stock = config.kernel(kernel_source.SERIES)
    layout = sandbox.Layout(
        stock.release, guest_image.headers_root(stock), top / "home", top / "state"
    )
    source = (tree, f"{sandbox.home(layout)}/{INSIDE_SOURCE}")
    return dataclasses.replace(layout, read_only=(source,))


def _make(layout: sandbox.Layout) -> list[str]:
    home = sandbox.home(layout)
    return ["make", "-C", f"{home}/{INSIDE_SOURCE}", f"O={home}/{INSIDE_BUILD}"]


def _configure(
    layout: sandbox.Layout, as_root: bool, env: dict[str, str], progress: Progress
) -> None:
    home = sandbox.home(layout)
    build_dir = f"{home}/{INSIDE_BUILD}"
    merge = f"{home}/{INSIDE_SOURCE}/scripts/kconfig/merge_config.sh"
    steps = [
        [*_make(layout), "tinyconfig"],
        [*_make(layout), "kvm_guest.config"],
        [merge, "-m", "-O", build_dir, f"{build_dir}/.config", f"{home}/{INSIDE_FRAGMENT}"],
        [*_make(layout), "olddefconfig"],
    ]
    for step in steps:
        _sandboxed(layout, as_root, env, step, progress)


def _build_env(pristine: Path) -> dict[str, str]:
    """Fixed build identity, so `uname -v` says nothing of this machine or this run."""
    stamp = time.gmtime((pristine / "Makefile").stat().st_mtime)
    return {
        "LANG": "C.UTF-8",
        "KBUILD_BUILD_USER": config.GUEST_USER,
        "KBUILD_BUILD_HOST": "kblog",
        "KBUILD_BUILD_VERSION": "1",
        "KBUILD_BUILD_TIMESTAMP": time.strftime("%a %b %d %H:%M:%S UTC %Y", stamp),
    }


def _sandboxed(
    layout: sandbox.Layout,
    as_root: bool,
    env: dict[str, str],
    command: list[str],
    progress: Progress,
) -> None:
    """Run `command` in the sandbox, reporting its latest line at least once a second."""
    argv = sandbox.argv(layout, command, as_root=as_root)
    started = time.monotonic()
    tail: list[str] = []
    proc = subprocess.Popen(
        argv,
        env=sandbox.env(layout, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            pending = b""
            while True:
                ready = sel.select(timeout=1.0)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        lines = [pending] if pending else []
                        pending = b""
                    else:
                        *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        tail = [*tail[-TAIL_LINES + 1 :], line.decode(errors="replace")]
                progress(time.monotonic() - started, tail[-1] if tail else "")
                if ready and not chunk:
                    break
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()  # the sandbox dies with it (--die-with-parent inside)
            proc.wait()
    if proc.returncode != 0:
        shown = " ".join(command[:2] + command[-1:])
        raise KernelBuildError(f"{shown} failed with status {proc.returncode}:\n" + "\n".join(tail))


def _keep_image(bzimage: Path, release: str) -> Path:
    """A copy of the bzImage named by its hash: the next build rewrites the original."""
    data = bzimage.read_bytes()
    final = config.cache_dir() / "images" / f"bzImage-{release}-{sources.digest([data])}"
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-bzImage-", dir=final.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, final)
    return final


# --- booting it ------------------------------------------------------------------------


def guest_artifacts(built: BuiltKernel, log: Log = print) -> guest_image.GuestArtifacts:
    """What runner/vm.py boots (and runner/snapshot.py saves): this kernel, the stock
    root disk, and an initramfs that loads no modules."""
    kernel = config.Kernel(name=f"{kernel_source.SERIES}-built", release=built.release)
    return guest_image.prepare_built(kernel, built.source_version, built.image, log)


def main(argv: list[str] | None = None) -> None:
    """`python -m runner.kernel_build [--fragment F] [PATCH ...]`: build, showing progress
    on stderr as scenario runs do (runner/display.py)."""
    import argparse

    from runner.display import Display  # rich: a host-side display

    parser = argparse.ArgumentParser(prog="python -m runner.kernel_build", description=main.__doc__)
    parser.add_argument("--fragment", type=Path, default=FRAGMENT)
    parser.add_argument("patches", type=Path, nargs="*")
    args = parser.parse_args(argv)
    shown = Display()
    with shown.task("kernel build") as show:
        spec = KernelSpec(args.fragment, tuple(args.patches))
        built = build(spec, progress=show, log=shown.print)
    print(f"{built.release}: {built.image}")
    print(" ".join(f"{phase} {secs:.1f} s" for phase, secs in built.seconds.items()))


if __name__ == "__main__":
    main()

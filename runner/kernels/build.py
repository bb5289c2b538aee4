"""A guest kernel built from Debian's source, a config fragment and patches.

Episode 3's posts patch the kernel, build it and boot it, in the build sandbox
(runner/sandbox.py) and exactly as a reader would:

    cd ~/linux; patch -p1 -Z < PATCH
    make O=~/build KCONFIG_ALLCONFIG=~/kernel/guest.config allnoconfig
    make O=~/build -j<cores> bzImage

A workspace per post, kernel series, source package version and fragment is kept
in the cache: the tree at ~/linux, hard links into the pristine unpacked source
(whose files are made read-only, so nothing writes through a link), and the objects
at ~/build. Each post keeps its own objects, so two posts that patch different files
never undo each other's work. Before a run the tree is checked out again: every file
a post changed becomes the pristine link once more. `patch -Z` dates the patched
files as the patch says, so the same patch applied again leaves make nothing to do,
and a changed patch rebuilds only what its files reach.

Before the first make of a run, `settle()` makes the objects fit the tree the post
has patched by then. A new workspace does not start cold when another post built
the same source and fragment: it is seeded with a copy of the objects of the one
whose tree was closest (`seed()`). A seed only saves work if it was built with the
configuration the post then makes: before the next make, one whose `.config` the
post's configuration step changed is replaced by a copy from a workspace built with
the new one, where there is one (`reseed()`). Then `reconcile()` removes the objects make would
wrongly keep (built from content this tree no longer has, yet newer than it), so a
post that applies the same patch as its seed rebuilds nothing, and one that patches
other files rebuilds what they, and the seed's reverted files, reach.

make decides by dates, so `accept()` checks after a build that the objects can be
trusted: a file that differs from what the last accepted build had, yet is dated
before that build, would have kept old objects (the workspace is then dropped);
one dated after the bzImage was never built. It also checks that every option of
the fragment made it into .config. `build()` runs the same recipe for the tests
and benchmarks; `guest_artifacts()` pairs a kernel with the stock root disk and
an initramfs that loads no modules, for runner/guest/vm.py and runner/guest/snapshot.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner import config, sandbox, sources
from runner.events import Log
from runner.guest import image as guest_image
from runner.kernels import source as kernel_source

FRAGMENT_NAME = "guest.config"  # in a run's kernel/ directory (~/kernel inside)
FRAGMENT = config.KERNEL_DIR / FRAGMENT_NAME  # the repository's
# Bump when the recipe below changes what a workspace holds.
RECIPE = "kbuild-2"
# Inside the sandbox, under the user's home.
INSIDE_SOURCE = "linux"
INSIDE_BUILD = "build"
INSIDE_KERNEL_DIR = "kernel"
INSIDE_PATCHES = "patches"
RECORD = ".kblog-accepted.json"  # in the objects: what the last accepted build was made from
BZIMAGE = Path("arch") / "x86" / "boot" / "bzImage"
TAIL_LINES = 30  # output lines kept for an error message
PRUNE_AFTER = 14 * 86400  # seconds a workspace may go unclaimed before it is removed

Progress = Callable[[float, str], None]  # (seconds since the step began, latest line)


class KernelBuildError(RuntimeError):
    """The kernel could not be configured, patched or built, or cannot be trusted."""


@dataclass(frozen=True)
class KernelSpec:
    """What to build: a kernel series' source, a config fragment, and patches applied
    in order (`patch -p1 -Z`), in the workspace of `post`."""

    fragment: Path = FRAGMENT
    patches: tuple[Path, ...] = ()
    series: str = config.DEFAULT_KERNEL
    post: str = "build"


@dataclass(frozen=True)
class BuiltKernel:
    series: str  # the kernel label whose source it is, e.g. "6.12"
    source_version: str  # the linux-source package version
    release: str  # the built kernel's `uname -r`
    image: Path  # its bzImage, a copy that later builds leave alone
    build_dir: Path  # the O= directory, kept for the next build
    seconds: dict[str, float] = field(default_factory=dict)  # what each phase took
    changed: dict[str, str] = field(default_factory=dict)  # differing(): the post's changes


# --- pure parts: config fragments, keys, the recipe -------------------------------------

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

    kconfig drops an option silently when a dependency is off; this is where that
    shows. An option the fragment turns off is met when .config lacks it.
    """
    have = parse_config(dotconfig)
    unmet = []
    for name, wanted in parse_config(fragment).items():
        got = have.get(name, "n")
        if got != wanted:
            shown = "not set" if got == "n" else got
            unmet.append(
                f"{name}={wanted} is not in .config: its dependencies are off (.config: {shown})"
            )
    return unmet


def family_key(series: str, source_version: str, fragment: str) -> str:
    """What a workspace's objects can be shared by: the same source and fragment."""
    return sources.digest([RECIPE, series, source_version, fragment])


def build_key(series: str, source_version: str, fragment: str, post: str) -> str:
    """The workspace's key, a directory name: the family's key and the post's name.
    Patches are left out, so that a changed one rebuilds incrementally."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", post).strip(".-")[:60] or "post"
    return f"{family_key(series, source_version, fragment)[:16]}-{series}-{slug}"


def recipe(home: str, patches: Sequence[str], jobs: int) -> list[list[str]]:
    """The commands that build the kernel, as a post shows them (`make -C` for `cd`),
    with the patches' paths inside the sandbox."""
    tree, objects = f"{home}/{INSIDE_SOURCE}", f"{home}/{INSIDE_BUILD}"
    fragment = f"{home}/{INSIDE_KERNEL_DIR}/{FRAGMENT_NAME}"
    make = ["make", "-C", tree, f"O={objects}"]
    return [
        *(["patch", "-p1", "-Z", "--fuzz=0", "-d", tree, "-i", patch] for patch in patches),
        [*make, f"KCONFIG_ALLCONFIG={fragment}", "allnoconfig"],
        [*make, f"-j{jobs}", "bzImage"],
    ]


def stale_files(
    now: dict[str, str], before: dict[str, str], dates: dict[str, float], accepted_at: float
) -> list[str]:
    """The files whose content differs from the last accepted build's but whose date
    is not after it: make kept the objects built from their old content.

    `now` and `before` map each file that differs from the pristine tree to its
    hash; `dates` has the current files' mtimes (a file back to pristine has the
    pristine date, a deleted one none).
    """
    changed = sorted(rel for rel in now.keys() | before.keys() if now.get(rel) != before.get(rel))
    return [rel for rel in changed if dates.get(rel, 0.0) <= accepted_at]


# --- the workspace: a checked-out tree and kept objects -----------------------------------


@dataclass(frozen=True)
class Workspace:
    top: Path  # in the cache, one per build_key()

    @property
    def tree(self) -> Path:
        return self.top / "src" / "linux"

    @property
    def objects(self) -> Path:
        return self.top / "objects"

    def binds(self, home: str) -> tuple[tuple[Path, str], ...]:
        """The sandbox's writable mounts: the tree at ~/linux, the objects at ~/build."""
        return ((self.tree, f"{home}/{INSIDE_SOURCE}"), (self.objects, f"{home}/{INSIDE_BUILD}"))


def workspace(series: str, source_version: str, fragment: str, post: str) -> Workspace:
    key = build_key(series, source_version, fragment, post)
    return Workspace(config.kernel_cache_dir() / "kernel-build" / key)


SEEDING = ".kblog-seeding"  # in the objects while a seed's copy is under way


def seed(
    ws: Workspace, now: dict[str, str], log: Log = lambda _m: None, config: bytes | None = None
) -> Path | None:
    """Give a workspace with no objects yet a copy of the objects of the one of its
    family (same series, source and fragment) whose last build had the tree closest
    to this one's (`now`: differing(), the post's changes so far); the workspace it
    came from, or None (none: the build starts cold).

    Called just before the run's first make, when the post has patched what it
    patches, so the closest one is known: a post applying the same patch as another
    finds everything up to date, and `reconcile()` settles what differs. The copy
    keeps its dates and its record of what it was built from. It goes into the
    objects directory itself, which a sandbox may have mounted already, behind a
    marker: a copy cut short is wiped and made again. Objects are copied, never
    linked: kbuild rewrites some files in place (shell redirections), which would
    write into the other workspace.

    With `config`, the .config the post's own configuration step wrote over a seed:
    only a workspace built with that configuration is a candidate, and its copy
    replaces the objects there.
    """
    marker = ws.objects / SEEDING
    if marker.exists():
        for left in list(ws.objects.iterdir()):
            if left != marker:
                _remove(left)
    elif config is None and (not ws.objects.is_dir() or any(ws.objects.iterdir())):
        return None  # its own objects, or a build of its own under way
    for other in _seed_candidates(ws, now, config):
        try:
            lock = os.open(other / ".lock", os.O_RDONLY | os.O_CLOEXEC)  # no O_CREAT
        except OSError:
            continue  # pruned since it was listed
        try:
            try:  # never copy objects a build is writing (or a prune removing): skip it
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                continue
            log(f"seeding the kernel workspace {ws.top.name} from {other.name}")
            marker.write_text(other.name + "\n")
            for left in list(ws.objects.iterdir()):  # a seed's objects being replaced
                if left != marker:
                    _remove(left)
            argv = ["cp", "-a", "--reflink=auto", f"{other / 'objects'}/.", str(ws.objects)]
            _run(argv, "seeding")
        finally:
            os.close(lock)
        marker.unlink()  # the copy is whole
        return other
    marker.unlink(missing_ok=True)
    return None


def _seed_candidates(ws: Workspace, now: dict[str, str], config: bytes | None) -> list[Path]:
    """The workspaces of `ws`'s family a seed may come from, the closest first: the
    fewest files whose content differs between their last build's tree and `now`."""
    family = ws.top.name.split("-", 1)[0] + "-"
    candidates = []
    for other in ws.top.parent.glob(f"{family}*"):
        record = other / "objects" / RECORD
        if other == ws.top or not record.is_file() or (other / "objects" / SEEDING).exists():
            continue
        try:
            files = json.loads(record.read_text())["files"]
            if config is not None and (other / "objects" / ".config").read_bytes() != config:
                continue
        except (OSError, ValueError, KeyError):
            continue
        mismatched = sum(now.get(rel) != files.get(rel) for rel in now.keys() | files.keys())
        candidates.append((mismatched, len(files), other.name, other))
    return [other for *_rank, other in sorted(candidates)]


def reconcile(ws: Workspace, pristine: Path, now: dict[str, str] | None = None) -> list[str]:
    """Before make reads the objects: remove those it would wrongly keep, and bring the
    record up to the tree. A file whose content is not what the recorded build had,
    yet is dated before that build, would leave its old objects in place (make goes
    by dates): another post's patch the seed was built with, reverted here; this
    post's patch, dated before the seed's build; a changed patch with unchanged dates.
    The objects built from each are removed, so make builds them again. Returns the
    files so treated."""
    record_path = ws.objects / RECORD
    if not record_path.is_file():
        return []
    record = json.loads(record_path.read_text())
    if now is None:
        now = differing(pristine, ws.tree)
    dates = {rel: (ws.tree / rel).lstat().st_mtime for rel, h in now.items() if h != "deleted"}
    stale = stale_files(now, record["files"], dates, record["accepted_at"])
    if not stale:
        return []
    invalidate(ws.objects, [f"/home/{config.GUEST_USER}/{INSIDE_SOURCE}/{rel}" for rel in stale])
    files = dict(record["files"])
    for rel in stale:
        if rel in now:
            files[rel] = now[rel]
        else:
            files.pop(rel, None)
    _write_record(record_path, record["accepted_at"], files)
    return stale


def _write_record(path: Path, accepted_at: float, files: dict[str, str]) -> None:
    # Renamed into place: a record cut short by a full disk is never read back.
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps({"accepted_at": accepted_at, "files": files}))
    os.replace(partial, path)


def settle(ws: Workspace, pristine: Path, log: Log = lambda _m: None) -> bytes | None:
    """Before a run's first make: seed a new workspace, then reconcile it. The .config
    the seed brought (for reseed()), or None if there was no seed."""
    now = differing(pristine, ws.tree)
    seeded = seed(ws, now, log) is not None
    reconcile(ws, pristine, now)
    return _dotconfig(ws) if seeded else None


def reseed(ws: Workspace, pristine: Path, seeded: bytes, log: Log = lambda _m: None) -> None:
    """Before the make after the one that followed a seed: if that make (the post's
    configuration step) wrote another .config than the seed's (`seeded`), every
    object would be compiled again; a workspace built with the new .config, if one
    is kept, gives its objects instead."""
    config = _dotconfig(ws)
    if config is None or config == seeded:
        return
    vmlinux, dotconfig = ws.objects / "vmlinux", ws.objects / ".config"
    if vmlinux.exists() and vmlinux.stat().st_mtime >= dotconfig.stat().st_mtime:
        return  # that make built the kernel with its .config: nothing left to save
    now = differing(pristine, ws.tree)
    if seed(ws, now, log, config=config) is not None:
        reconcile(ws, pristine, now)


def _dotconfig(ws: Workspace) -> bytes | None:
    try:
        return (ws.objects / ".config").read_bytes()
    except FileNotFoundError:
        return None


# A build step's command that makes kernel objects: make with O= (or KBUILD_OUTPUT).
# `make -s kernelversion` in the source tree reads no objects, and a patch may come
# after it, so only these settle the tree first (reconcile()).
MAKES_OBJECTS = re.compile(r"\bmake\b[^\n;|&]*\bO=|\bKBUILD_OUTPUT=")


@contextlib.contextmanager
def claimed(
    ws: Workspace,
    log: Log = lambda _m: None,
    removed: Callable[[Path], None] = lambda _top: None,
) -> Iterator[Workspace]:
    """The workspace, for this process alone until the block ends. Opening its lock
    dates it: workspaces beside it left unclaimed for PRUNE_AFTER are removed, and
    `removed` is told of each (what was made from it goes too)."""
    while True:
        ws.top.mkdir(parents=True, exist_ok=True)
        with open(ws.top / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = os.stat(ws.top / ".lock").st_ino == os.fstat(lock.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                continue  # pruned while we waited: the lock we hold is of a removed one
            for gone in prune(ws.top.parent, time.time() - PRUNE_AFTER):
                log(f"removed the kernel workspace {gone}, unused for {PRUNE_AFTER // 86400} days")
                removed(gone)
            yield ws
            return


def prune(parent: Path, unused_since: float) -> list[Path]:
    """Remove the workspaces in `parent` last claimed before `unused_since` (a time):
    each keeps a kernel's objects (1 to 2 GB) for a source version or fragment that
    nothing has built since. One claimed now stays; so does one claimed since it was
    looked at. A workspace is renamed away before it is removed: nobody finds it half
    gone, and a claimer that waited on its lock sees that it went (claimed())."""
    for left in parent.glob(".pruned-*"):  # by a prune that was killed mid-way
        shutil.rmtree(left, ignore_errors=True)
    removed = []
    for lock_path in sorted(parent.glob("[!.]*/.lock")):
        # Whatever stops one (in use, taken by another prune, another user's): skip it.
        # A build must never fail for want of removing something it does not need.
        try:
            fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)  # no O_CREAT, no date
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_mtime >= unused_since:
                continue
            trash = parent / f".pruned-{os.getpid()}-{lock_path.parent.name}"
            os.rename(lock_path.parent, trash)
        except OSError:
            continue
        finally:
            os.close(fd)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(lock_path.parent)
    return removed


def checkout(pristine: Path, ws: Workspace, as_root: bool) -> None:
    """Make the workspace's tree the pristine source again, and let the sandbox's user
    write its directories and the objects (not the files: they are the pristine ones)."""
    owner = sandbox.SANDBOX_UID if as_root else None
    sealed_at = kernel_source.seal(pristine, owner)
    if not ws.tree.exists():
        ws.tree.parent.mkdir(parents=True, exist_ok=True)
        tmp = ws.tree.with_name(f".tmp-{os.getpid()}-{ws.tree.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(["cp", "-al", str(pristine), str(tmp)], "linking the source tree")
        os.rename(tmp, ws.tree)
    _sync_dir(pristine, ws.tree, owner, sealed_at)
    old = ws.top / "home" / INSIDE_BUILD  # where the first recipe kept its objects
    if old.is_dir() and not ws.objects.exists():
        os.rename(old, ws.objects)
    ws.objects.mkdir(exist_ok=True)
    if owner is not None:
        os.chown(ws.objects, owner, owner)


def _sync_dir(pristine: Path, tree: Path, owner: int | None, sealed_at: float) -> None:
    """Relink what differs (inode numbers come with the directory entries), and check
    that no pristine file was written since the seal."""
    theirs = {e.name: e for e in os.scandir(pristine)}
    for entry in theirs.values():
        if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime > sealed_at:
            unpacked = config.kernel_cache_dir() / "kernel-source"
            raise KernelBuildError(
                f"{entry.path} changed after it was unpacked (something wrote through a "
                f"link of a kernel workspace): remove {unpacked} to unpack it again"
            )
    for entry in os.scandir(tree):
        source = theirs.pop(entry.name, None)
        if _is_pristine(entry, source):
            if source is not None and entry.is_dir(follow_symlinks=False):
                _sync_dir(Path(source.path), Path(entry.path), owner, sealed_at)
            continue
        _remove(Path(entry.path))
        if source is not None:
            theirs[entry.name] = source  # put back below
    for name, source in theirs.items():  # missing here, or removed above
        target = tree / name
        if source.is_dir(follow_symlinks=False):
            _run(["cp", "-al", source.path, str(target)], "linking the source tree")
            if owner is not None:
                for sub in (target, *(p for p in target.rglob("*") if p.is_dir())):
                    os.chown(sub, owner, owner, follow_symlinks=False)
        elif source.is_symlink():
            os.symlink(os.readlink(source.path), target)
        else:
            os.link(source.path, target)
    if owner is not None and os.stat(tree).st_uid != owner:
        os.chown(tree, owner, owner)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def differing(pristine: Path, tree: Path) -> dict[str, str]:
    """Each file of the tree that is not the pristine one, with a hash of its content."""
    found: dict[str, str] = {}
    _differing(pristine, tree, "", found)
    return found


def _differing(pristine: Path | None, tree: Path, prefix: str, found: dict[str, str]) -> None:
    theirs = {e.name: e for e in os.scandir(pristine)} if pristine is not None else {}
    entries = list(os.scandir(tree))
    for entry in entries:
        rel = prefix + entry.name
        source = theirs.get(entry.name)
        same = _is_pristine(entry, source)
        if entry.is_dir(follow_symlinks=False):
            inside = Path(source.path) if same and source is not None else None
            _differing(inside, Path(entry.path), rel + "/", found)
        elif same:
            continue
        elif entry.is_symlink():
            found[rel] = "link:" + os.readlink(entry.path)
        else:
            found[rel] = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()[:16]
    for name in theirs.keys() - {e.name for e in entries}:
        found[prefix + name] = "deleted"


def _is_pristine(entry: os.DirEntry[str], source: os.DirEntry[str] | None) -> bool:
    """Whether a tree entry is still its pristine counterpart: a directory for a
    directory, a link to the same place, or the same inode (inode numbers come with
    the directory entries: no stat)."""
    if source is None:
        return False
    if entry.is_dir(follow_symlinks=False):
        return source.is_dir(follow_symlinks=False)
    if entry.is_symlink():
        return source.is_symlink() and os.readlink(entry.path) == os.readlink(source.path)
    plain = not source.is_dir(follow_symlinks=False) and not source.is_symlink()
    return plain and entry.inode() == source.inode()


def invalidate(objects: Path, sources_inside: Sequence[str]) -> int:
    """Remove every target whose kbuild record (.NAME.cmd) names one of the sources,
    so that make builds it again; returns how many went."""
    removed = 0
    wanted = [path.encode() for path in sources_inside]
    for cmd in objects.rglob(".*.cmd"):
        data = cmd.read_bytes()
        if any(path in data for path in wanted):
            target = cmd.with_name(cmd.name[1 : -len(".cmd")])
            if target.exists():
                target.unlink()
                removed += 1
    return removed


def accept(
    ws: Workspace, pristine: Path, series: str, source_version: str, fragment: str
) -> BuiltKernel:
    """The kernel the workspace's last `make bzImage` left, once it can be trusted."""
    objects = ws.objects
    shown = f"~/{INSIDE_BUILD}"
    bzimage = objects / BZIMAGE
    if not bzimage.is_file():
        raise KernelBuildError(f"{shown}/{BZIMAGE} does not exist: no step built the kernel")
    unmet = unmet_options(fragment, (objects / ".config").read_text())
    if unmet:
        raise KernelBuildError(f"{INSIDE_KERNEL_DIR}/{FRAGMENT_NAME}: " + "; ".join(unmet))
    now = differing(pristine, ws.tree)
    dates = {rel: (ws.tree / rel).lstat().st_mtime for rel, h in now.items() if h != "deleted"}
    built_at = bzimage.stat().st_mtime
    unbuilt = sorted(rel for rel, date in dates.items() if date > built_at)
    if unbuilt:
        raise KernelBuildError(
            f"~/{INSIDE_SOURCE}/{unbuilt[0]} changed after {shown}/{BZIMAGE} was built: "
            "run make again before booting it"
        )
    record_path = objects / RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    if record is not None:
        stale = stale_files(now, record["files"], dates, record["accepted_at"])
        if stale:
            removed = invalidate(objects, [f"/home/{config.GUEST_USER}/{INSIDE_SOURCE}/{rel}"
                                           for rel in stale])  # fmt: skip
            raise KernelBuildError(
                f"~/{INSIDE_SOURCE}/{stale[0]} is not what the last accepted build had, yet "
                "is dated before it, so make may have kept objects of its old content: "
                f"{removed} objects built from it are removed, and make will build them "
                "again (a changed patch should date its files later, on the +++ lines)"
            )
    release = (objects / "include" / "config" / "kernel.release").read_text().strip()
    image = _keep_image(bzimage, release)
    _write_record(record_path, time.time(), now)
    return BuiltKernel(series, source_version, release, image, objects, changed=now)


def patch_targets(text: str) -> dict[str, list[str]]:
    """The files a unified diff changes (its `+++ b/` paths), each with the lines it
    adds."""
    targets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("+++ "):
            path = line[4:].split("\t", 1)[0].strip()
            path = path.split("/", 1)[1] if "/" in path else path  # -p1
            current = targets.setdefault(path, [])
        elif line.startswith("--- ") or line.startswith("diff "):
            current = None
        elif current is not None and line.startswith("+"):
            current.append(line[1:])
    return targets


def applied_patch(tree: Path, changed: dict[str, str], posts_tree: Path) -> Path | None:
    """Which patch file of the post's tree (`posts_tree`: its kmod/) made the source's
    `changed` files: the one whose files are exactly those and whose added lines are all
    in them (the 6.1 and 6.12 patches of one call touch the same files; their lines
    differ). None if no one patch file accounts for the change."""
    files = {rel for rel in changed if not rel.endswith((".orig", ".rej"))}
    if not files:
        return None
    for candidate in sorted(posts_tree.rglob("*.patch")):
        try:
            targets = patch_targets(candidate.read_text())
        except (OSError, UnicodeDecodeError):
            continue
        if set(targets) != files:
            continue
        try:
            if all(
                set(added) <= set((tree / rel).read_text().splitlines())
                for rel, added in targets.items()
            ):
                return candidate
        except (OSError, UnicodeDecodeError):
            continue
    return None


def fragments_met(kernel_dir: Path, dotconfig: str) -> list[Path]:
    """The config fragments of a post's kernel/ whose every setting the built .config
    carries, kernel/guest.config first: a post's own steps may add one (episode 4
    merges debug.config into guest.config), and the page credits what was used."""
    found = sorted(kernel_dir.glob("*.config"), key=lambda p: (p.name != FRAGMENT_NAME, p.name))
    return [
        path
        for path in found
        if path.name == FRAGMENT_NAME or not unmet_options(path.read_text(), dotconfig)
    ]


def provenance(
    built: BuiltKernel, package: str, tree: Path, fragment: str, posts_tree: Path
) -> dict[str, str]:
    """What a page says of a kernel its post built (runner.scenario.Provenance.built).

    `fragment` and `fragment_sha256` name each config fragment the kernel's .config
    carries, separated by spaces: guest.config (the recipe's), then those the post's
    steps added."""
    patch = applied_patch(tree, built.changed, posts_tree)
    dotconfig = built.build_dir / ".config"
    extra = [
        path
        for path in fragments_met(posts_tree / INSIDE_KERNEL_DIR, dotconfig.read_text())
        if path.name != FRAGMENT_NAME
    ]
    names = [FRAGMENT_NAME, *(path.name for path in extra)]
    digests = [
        hashlib.sha256(fragment.encode()).hexdigest(),
        *(hashlib.sha256(path.read_bytes()).hexdigest() for path in extra),
    ]
    return {
        "release": built.release,
        "source_package": package,
        "source_version": built.source_version,
        "patch": str(patch.relative_to(posts_tree)) if patch is not None else "",
        "patch_sha256": hashlib.sha256(patch.read_bytes()).hexdigest() if patch else "",
        "fragment": " ".join(f"{config.KERNEL_DIR.name}/{name}" for name in names),
        "fragment_sha256": " ".join(digests),
    }


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
    top: Path | None = None,
) -> BuiltKernel:
    """The kernel `spec` describes, built (or brought up to date) by the recipe a post
    shows, each command in the sandbox, in its workspace or in one at `top`."""
    spec = spec or KernelSpec()
    kernel = config.kernel(spec.series)
    source = kernel_source.fetch(kernel, log)
    fragment = spec.fragment.read_text()
    seconds: dict[str, float] = {}
    if source.unpack_seconds:
        seconds["unpack"] = source.unpack_seconds
    ws = (
        Workspace(top)
        if top is not None
        else workspace(kernel.name, source.version, fragment, spec.post)
    )
    with claimed(ws, log):
        started = time.monotonic()
        as_root = os.geteuid() == 0
        checkout(source.tree, ws, as_root)
        home = ws.top / "home"
        shutil.rmtree(home, ignore_errors=True)
        (home / INSIDE_KERNEL_DIR).mkdir(parents=True)
        (home / INSIDE_KERNEL_DIR / FRAGMENT_NAME).write_text(fragment)
        (home / INSIDE_PATCHES).mkdir()
        layout = _layout(ws, kernel)
        inside = []
        for n, patch in enumerate(spec.patches):
            name = f"{n:02d}-{patch.name}"
            shutil.copyfile(patch, home / INSIDE_PATCHES / name)
            inside.append(f"{sandbox.home(layout)}/{INSIDE_PATCHES}/{name}")
        sandbox.prepare(layout, as_root=as_root)
        env = build_env(source.tree)
        seconds["checkout"] = time.monotonic() - started
        clean = not (ws.objects / "vmlinux").exists()
        log(f"building bzImage from {source.package} {source.version}" + (clean * " (minutes)"))
        started = time.monotonic()
        cores = jobs or len(os.sched_getaffinity(0))  # what nproc says
        seeded: bytes | None = None
        for command in recipe(sandbox.home(layout), inside, cores):
            if command[0] == "make" and command[-1] == "allnoconfig":
                seeded = settle(ws, source.tree, log)  # patched: the tree make will read
            elif command[0] == "make" and seeded is not None:
                reseed(ws, source.tree, seeded, log)
            _sandboxed(layout, as_root, env, command, progress)
        seconds["make"] = time.monotonic() - started
        built = accept(ws, source.tree, kernel.name, source.version, fragment)
    return dataclasses.replace(built, seconds=seconds)


def _layout(ws: Workspace, stock: config.Kernel) -> sandbox.Layout:
    # The reader builds on the stock guest of the series: its headers, its `uname -r`.
    layout = sandbox.Layout(
        stock.release, guest_image.headers_root(stock), ws.top / "home", ws.top / "state"
    )
    return dataclasses.replace(layout, read_write=ws.binds(sandbox.home(layout)))


def build_env(pristine: Path) -> dict[str, str]:
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
    final = config.kernel_cache_dir() / "images" / f"bzImage-{release}-{sources.digest([data])}"
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-bzImage-", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except OSError as exc:  # a full cache: no partial copy left to fill it more
        Path(tmp).unlink(missing_ok=True)
        raise KernelBuildError(f"{final}: cannot write it: {exc.strerror}") from None
    os.chmod(tmp, 0o644)
    os.replace(tmp, final)
    return final


# --- booting it ------------------------------------------------------------------------


def guest_artifacts(built: BuiltKernel, log: Log = print) -> guest_image.GuestArtifacts:
    """What runner/guest/vm.py boots (and runner/guest/snapshot.py saves): this kernel, the stock
    root disk, and an initramfs that loads no modules."""
    kernel = config.Kernel(name=f"{built.series}-built", release=built.release)
    lineage = built.build_dir.parent.name  # the workspace's key
    return guest_image.prepare_built(kernel, built.source_version, built.image, log, lineage)


def main(argv: list[str] | None = None) -> None:
    """`python -m runner.kernels.build [--fragment F] [PATCH ...]`: build, showing progress
    on stderr as scenario runs do (runner/display.py)."""
    import argparse

    from runner.display import Display  # rich: a host-side display

    parser = argparse.ArgumentParser(
        prog="python -m runner.kernels.build", description=main.__doc__
    )
    parser.add_argument("--fragment", type=Path, default=FRAGMENT)
    parser.add_argument("--kernel", default=config.DEFAULT_KERNEL, help="the series' source")
    parser.add_argument("--post", default="build", help="whose workspace")
    parser.add_argument("patches", type=Path, nargs="*")
    args = parser.parse_args(argv)
    shown = Display()
    with shown.task("kernel build") as show:
        spec = KernelSpec(args.fragment, tuple(args.patches), args.kernel, args.post)
        built = build(spec, progress=show, log=shown.print)
    print(f"{built.release}: {built.image}")
    print(" ".join(f"{phase} {secs:.1f} s" for phase, secs in built.seconds.items()))


if __name__ == "__main__":
    main()

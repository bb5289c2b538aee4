"""The build environment: where a post's `where=build` steps run.

A shell in bubblewrap with its own user, mount, PID, IPC, UTS and network
namespaces: no network, no capabilities, an unprivileged user (root hands over
to `SANDBOX_UID` first), the system directories read-only, and only the post's
tree writable. It dies with the runner (`--die-with-parent`; the runner kills
its process group at the end of the scenario).

Inside, the paths are the ones a reader has on a Debian machine that runs the
guest kernel: its headers at /usr/src/linux-headers-<release>, with
/lib/modules/<release>/build pointing there, the post's tree at /home/user, and
`uname -r` saying the guest's release. So the module Makefiles need no KDIR,
and the page shows no path of the build host.

The argv is data, built here and nowhere else; `argv()` is pure, so it is
tested without starting anything.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from runner import config

HERE = Path(__file__).resolve().parent
UNAME_SHIM = HERE / "sandbox-uname"
# Who runs the sandbox when the runner is root: nobody, who owns nothing.
SANDBOX_UID = 65534
# Where the guest's release is read by the uname shim (a tmpfs of the sandbox).
RELEASE_FILE = "/run/kblog/release"
# PATH inside: the guest's. /usr/local is the sandbox's own (just the shim), so a
# tool installed by hand on the host never stands in for a packaged one.
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# Host directories seen read-only; /usr is rebuilt below, the rest as it is.
SYSTEM_DIRS = ("/etc", "/opt")
# Parts of the host's /usr that the guest kernel's headers take the place of.
REPLACED_IN_USR = {"src", "local"}
REPLACED_IN_USR_LIB = {"modules"}


class SandboxError(RuntimeError):
    """The build environment cannot be set up here; says why and what to do."""


@dataclass(frozen=True)
class Layout:
    """What the sandbox shows, and where it comes from on this machine."""

    release: str  # the guest kernel's `uname -r`
    headers_root: Path  # a root holding usr/src/linux-headers-*, usr/lib/linux-kbuild-*
    tree: Path  # the post's tree on this machine; /home/<user> inside
    state: Path  # a private directory for the sandbox's passwd, group and release
    user: str = config.GUEST_USER
    uid: int = 1000  # the guest user's uid, as the reader's first user has
    # More trees shown read-only: (path on this machine, path inside). They are
    # mounted after the tree, so one may sit inside it (a kernel source at
    # /home/user/linux whose objects go to a writable O= beside it).
    read_only: tuple[tuple[Path, str], ...] = ()


def bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxError(
            "bwrap is missing: the build steps run in bubblewrap (Debian's bubblewrap; "
            "`make` installs runner/host-packages.txt)"
        )
    return path


def home(layout: Layout) -> str:
    return f"/home/{layout.user}"


def kernel_sources(headers_root: Path) -> list[tuple[Path, str]]:
    """(where on this machine, where in the sandbox) of the guest kernel's headers and
    kbuild tools, in the places Debian's packages install them."""
    found = [(headers_root / "usr" / "src", "/usr/src")]
    for kbuild in sorted((headers_root / "usr" / "lib").glob("linux-kbuild-*")):
        found.append((kbuild, f"/usr/lib/{kbuild.name}"))
    for modules in sorted((headers_root / "lib" / "modules").glob("*")):
        found.append((modules, f"/usr/lib/modules/{modules.name}"))
    return found


def _usr_binds(usr: Path, kernel: list[tuple[Path, str]]) -> list[str]:
    """/usr as the host has it, less /usr/src and /usr/local, with the kernel's headers
    and kbuild tools in their packaged places. Each entry is bound on its own, since a
    directory inside a read-only bind could not take a new mount point."""
    args: list[str] = []
    for entry in sorted(usr.iterdir()):
        if entry.name in REPLACED_IN_USR:
            continue
        if entry.name == "lib":
            for sub in sorted(entry.iterdir()):
                kernel_owned = sub.name.startswith("linux-kbuild-")
                if sub.name in REPLACED_IN_USR_LIB or kernel_owned:
                    continue
                args += _bind(sub, f"/usr/lib/{sub.name}")
        else:
            args += _bind(entry, f"/usr/{entry.name}")
    for source, dest in kernel:
        args += ["--ro-bind", str(source), dest]
    return args


def _bind(path: Path, dest: str) -> list[str]:
    if path.is_symlink():
        return ["--symlink", os.readlink(path), dest]
    return ["--ro-bind", str(path), dest]


def _root_links() -> list[str]:
    """/bin, /lib, ... as the host has them: links into /usr on a merged-/usr system."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args


def shared(layout: Layout) -> list[tuple[Path, str]]:
    """(where on this machine, where in the sandbox) of everything it sees read-only
    from our own files: the kernel's trees, and the layout's extra folders."""
    return [*kernel_sources(layout.headers_root), *layout.read_only]


def staged(layout: Layout) -> list[Path]:
    """Mount points in the sandbox's state directory for shared() (as root)."""
    return [layout.state / "staged" / str(n) for n in range(len(shared(layout)))]


def staged_tree(layout: Layout) -> Path:
    """The mount point of the writable tree, staged as the read-only ones are."""
    return layout.state / "staged" / "home"


def argv(layout: Layout, command: list[str], as_root: bool, usr: Path = Path("/usr")) -> list[str]:
    """The whole command line that runs `command` in the sandbox."""
    sources = shared(layout)
    tree = layout.tree
    stage: list[str] = []
    if as_root:
        # The cache may sit where nobody cannot walk (/root, a private home): root
        # binds our read-only trees into the state directory, in a mount namespace of
        # its own, before handing over; the sandbox binds them from there. Its own
        # PID namespace too: when its first process dies (with the runner), the
        # kernel kills everything under it, which a monitor run as nobody, whose
        # parent-death signal the change of user clears, would otherwise outlive.
        points = staged(layout)
        stage = ["bwrap", "--bind", "/", "/", "--dev-bind", "/dev", "/dev"]
        stage += ["--unshare-pid", "--die-with-parent"]
        for (source, _), point in zip(sources, points, strict=True):
            stage += ["--ro-bind", str(source), str(point)]
        stage += ["--bind", str(layout.tree), str(staged_tree(layout)), "--"]
        tree = staged_tree(layout)
        sources = [(point, dest) for point, (_, dest) in zip(points, sources, strict=True)]
    kernel = sources[: len(sources) - len(layout.read_only)]
    extra = sources[len(kernel) :]
    inside_home = home(layout)
    args = [
        "bwrap",
        # New user, mount, PID, IPC, UTS, cgroup and network namespaces: no network
        # (only a loopback that is down), no signals to the host's processes.
        "--unshare-all",
        "--uid", str(layout.uid),
        "--gid", str(layout.uid),
        "--hostname", "kblog",
        # Killed with the runner, whatever ends it.
        "--die-with-parent",
        *_usr_binds(usr, kernel),
        *_root_links(),
    ]  # fmt: skip
    for system_dir in SYSTEM_DIRS:
        if Path(system_dir).is_dir():
            args += ["--ro-bind", system_dir, system_dir]
    args += [
        # The guest's user in place of the host's accounts.
        "--ro-bind", str(layout.state / "passwd"), "/etc/passwd",
        "--ro-bind", str(layout.state / "group"), "/etc/group",
        "--ro-bind", str(layout.state / "uname"), "/usr/local/bin/uname",
        "--ro-bind", str(layout.state / "release"), RELEASE_FILE,
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        # The only place it may write.
        "--bind", str(tree), inside_home,
    ]  # fmt: skip
    for source, inside in extra:  # after the home: they may sit inside it
        args += ["--ro-bind", str(source), inside]
    args += ["--chdir", inside_home, "--", *command]
    if as_root:
        # bwrap as root would map root into the sandbox's namespace; run it as
        # nobody, with no supplementary groups, as a reader's build would run.
        uid = str(SANDBOX_UID)
        args = [*stage, "setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--", *args]
    return args


def env(layout: Layout, base: dict[str, str]) -> dict[str, str]:
    """The environment of the sandbox's shell: `base` with the guest user's HOME and PATH."""
    return {**base, "HOME": home(layout), "USER": layout.user, "LOGNAME": layout.user, "PATH": PATH}


def prepare(layout: Layout, as_root: bool, top: Path) -> None:
    """Write the sandbox's account files and hand its tree to the sandbox's user.

    `top` is the outermost directory of ours above the tree and the state: as root,
    it and every directory below it on the way are made traversable (not readable)
    for the sandbox's user.
    """
    layout.state.mkdir(parents=True, exist_ok=True)
    uid = layout.uid
    (layout.state / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/bash\n"
        f"{layout.user}:x:{uid}:{uid}::{home(layout)}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (layout.state / "group").write_text(f"root:x:0:\n{layout.user}:x:{uid}:\nnogroup:x:65534:\n")
    (layout.state / "release").write_text(layout.release + "\n")
    # A copy beside the rest: the runner's own directory may be private to its user.
    shutil.copyfile(UNAME_SHIM, layout.state / "uname")
    (layout.state / "uname").chmod(0o755)
    if not as_root:
        return
    for point in [*staged(layout), staged_tree(layout)]:
        point.mkdir(parents=True, exist_ok=True)
    for path in (layout.tree, layout.state):
        for parent in [p for p in path.parents if p == top or top in p.parents]:
            parent.chmod(parent.stat().st_mode | 0o111)
    for path in (layout.tree, *layout.tree.rglob("*")):
        os.chown(path, SANDBOX_UID, SANDBOX_UID, follow_symlinks=False)

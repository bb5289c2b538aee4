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
# Where root mounts our files for the sandbox: a tmpfs over /tmp that only its own
# mount namespace sees (the host's /tmp is left alone), and below it one point each.
STAGE_TMPFS = "/tmp"
STAGE = "/tmp/kblog"
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
    # More trees the sandbox may write (a kernel tree the post patches, its kept
    # objects), mounted like read_only ones.
    read_write: tuple[tuple[Path, str], ...] = ()


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


def _usr_binds(usr: Path) -> list[str]:
    """/usr as the host has it, less /usr/src, /usr/local and the kernel's places, which
    the guest kernel's trees (and our uname) take. Each entry is bound on its own,
    since a directory inside a read-only bind could not take a new mount point."""
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


def _own_binds(layout: Layout) -> list[tuple[str, Path, str]]:
    """(bwrap's bind option, our file or directory, where in the sandbox) for all of
    ours the sandbox sees; the writable home comes before the extra folders, which
    may sit inside it."""
    kernel = kernel_sources(layout.headers_root)
    state = [
        (layout.state / "passwd", "/etc/passwd"),  # the guest's user, not the host's accounts
        (layout.state / "group", "/etc/group"),
        (layout.state / "uname", "/usr/local/bin/uname"),
        (layout.state / "release", RELEASE_FILE),
    ]
    return [
        *(("--ro-bind", src, dest) for src, dest in kernel + state),
        ("--bind", layout.tree, home(layout)),  # the only place it may write
        *(("--ro-bind", src, dest) for src, dest in layout.read_only),
        *(("--bind", src, dest) for src, dest in layout.read_write),
    ]


def argv(layout: Layout, command: list[str], as_root: bool, usr: Path = Path("/usr")) -> list[str]:
    """The whole command line that runs `command` in the sandbox."""
    binds = [(option, str(src), dest) for option, src, dest in _own_binds(layout)]
    stage: list[str] = []
    if as_root:
        # Our files may sit where nobody cannot walk (a cache in /root, a private
        # home): root mounts each of them into a tmpfs of a mount namespace of its
        # own, and the sandbox, run by nobody, binds them from there. Its own PID
        # namespace too: when its first process dies (with the runner), the kernel
        # kills everything under it, which a monitor run as nobody, whose
        # parent-death signal the change of user clears, would otherwise outlive.
        stage = ["bwrap", "--bind", "/", "/", "--dev-bind", "/dev", "/dev"]
        stage += ["--unshare-pid", "--die-with-parent", "--tmpfs", STAGE_TMPFS]
        stage += ["--perms", "0755", "--dir", STAGE]  # bwrap would make it 0700
        staged = []
        for n, (option, src, dest) in enumerate(binds):
            point = f"{STAGE}/{n}"
            stage += [option, src, point]
            staged.append((option, point, dest))
        stage.append("--")
        binds = staged
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
        *_usr_binds(usr),
        *_root_links(),
    ]  # fmt: skip
    for system_dir in SYSTEM_DIRS:
        if Path(system_dir).is_dir():
            args += ["--ro-bind", system_dir, system_dir]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for option, src, dest in binds:  # after /usr and /etc: they replace parts of them
        args += [option, src, dest]
    args += ["--chdir", home(layout), "--", *command]
    if as_root:
        # bwrap as root would map root into the sandbox's namespace; run it as
        # nobody, with no supplementary groups, as a reader's build would run.
        uid = str(SANDBOX_UID)
        args = [*stage, "setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--", *args]
    return args


def env(layout: Layout, base: dict[str, str]) -> dict[str, str]:
    """The environment of the sandbox's shell: `base` with the guest user's HOME and PATH."""
    return {**base, "HOME": home(layout), "USER": layout.user, "LOGNAME": layout.user, "PATH": PATH}


def prepare(layout: Layout, as_root: bool) -> None:
    """Write the sandbox's account files and hand its tree to the sandbox's user."""
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
    if as_root:
        # nobody writes the tree: the staging in argv() lets it reach it.
        for path in (layout.tree, *layout.tree.rglob("*")):
            os.chown(path, SANDBOX_UID, SANDBOX_UID, follow_symlinks=False)

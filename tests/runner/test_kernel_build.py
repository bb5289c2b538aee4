"""A guest kernel built from Debian's source: the config check, the cache keys, the
patched tree, and one real build booted in a VM (cached, so only a first run pays)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from runner import config, guest_image, kernel_build, snapshot, vm
from runner.agent_client import AgentClient
from runner.kernel_build import (
    FRAGMENT,
    build_key,
    parse_config,
    patched_files,
    patches_digest,
    prepare_tree,
    unmet_options,
)

# What the measured recipe (docs: sandbox-facts, "Building a guest kernel") enables.
FACTS_OPTIONS = [
    "64BIT", "PRINTK", "TTY", "SERIAL_8250", "SERIAL_8250_CONSOLE", "BLK_DEV_INITRD",
    "RD_GZIP", "DEVTMPFS", "DEVTMPFS_MOUNT", "PROC_FS", "SYSFS", "TMPFS", "OVERLAY_FS",
    "EXT4_FS", "VIRTIO_PCI", "VIRTIO_CONSOLE", "VIRTIO_BLK", "BINFMT_ELF", "BINFMT_SCRIPT",
    "UNIX", "NET", "FUTEX", "EPOLL", "SIGNALFD", "TIMERFD", "EVENTFD", "SHMEM", "UNIX98_PTYS",
    "MULTIUSER", "FILE_LOCKING", "POSIX_TIMERS", "SYSVIPC", "MODULES", "MODULE_UNLOAD", "BUG",
    "ELF_CORE", "KALLSYMS", "KALLSYMS_ALL", "PROC_SYSCTL", "SMP", "HW_RANDOM_VIRTIO", "CRC32",
]  # fmt: skip


# --- the config check ------------------------------------------------------------------


def test_parse_config_reads_values_and_unset_lines() -> None:
    text = (
        "# comment\n"
        "CONFIG_A=y\n"
        "CONFIG_B=m\n"
        'CONFIG_LOCALVERSION="-kblog"\n'
        "# CONFIG_C is not set\n"
        "CONFIG_NR=64\n"
    )
    assert parse_config(text) == {
        "CONFIG_A": "y",
        "CONFIG_B": "m",
        "CONFIG_LOCALVERSION": '"-kblog"',
        "CONFIG_C": "n",
        "CONFIG_NR": "64",
    }


def test_unmet_options_names_the_one_olddefconfig_dropped() -> None:
    fragment = "CONFIG_VIRTIO_BLK=y\nCONFIG_HW_RANDOM_VIRTIO=y\n# CONFIG_KERNEL_XZ is not set\n"
    dotconfig = "CONFIG_VIRTIO_BLK=y\n# CONFIG_HW_RANDOM_VIRTIO is not set\n"
    assert unmet_options(fragment, dotconfig) == [
        "CONFIG_HW_RANDOM_VIRTIO=y did not survive olddefconfig (.config: not set)"
    ]


def test_unmet_options_sees_a_changed_value_and_a_missing_line() -> None:
    fragment = 'CONFIG_EXT4_FS=y\nCONFIG_LOCALVERSION="-kblog"\nCONFIG_OVERLAY_FS=y\n'
    dotconfig = 'CONFIG_EXT4_FS=m\nCONFIG_LOCALVERSION=""\n'
    assert unmet_options(fragment, dotconfig) == [
        "CONFIG_EXT4_FS=y did not survive olddefconfig (.config: m)",
        'CONFIG_LOCALVERSION="-kblog" did not survive olddefconfig (.config: "")',
        "CONFIG_OVERLAY_FS=y did not survive olddefconfig (.config: not set)",
    ]


def test_an_option_turned_off_is_met_when_absent() -> None:
    assert unmet_options("# CONFIG_KERNEL_XZ is not set\n", "CONFIG_KERNEL_GZIP=y\n") == []
    assert unmet_options("# CONFIG_KERNEL_XZ is not set\n", "CONFIG_KERNEL_XZ=y\n") == [
        "CONFIG_KERNEL_XZ=n did not survive olddefconfig (.config: y)"
    ]


def test_the_fragment_carries_the_measured_recipe_and_a_release_of_its_own() -> None:
    wanted = parse_config(FRAGMENT.read_text())
    missing = [name for name in FACTS_OPTIONS if wanted.get(f"CONFIG_{name}") != "y"]
    assert missing == []
    assert wanted["CONFIG_LOCALVERSION"] == '"-kblog"'
    # Everything built in: the initramfs of a built kernel loads no modules.
    assert "m" not in wanted.values()


# --- cache keys ------------------------------------------------------------------------


def test_build_key_follows_source_and_fragment() -> None:
    key = build_key("6.1.192-3", "CONFIG_A=y\n")
    assert key == build_key("6.1.192-3", "CONFIG_A=y\n")
    assert key != build_key("6.1.192-4", "CONFIG_A=y\n")
    assert key != build_key("6.1.192-3", "CONFIG_A=y\nCONFIG_B=y\n")


def test_patch_digest_follows_content_and_order() -> None:
    a, b = b"--- a/x\n+++ b/x\n", b"--- a/y\n+++ b/y\n"
    assert patches_digest([a, b]) == patches_digest([a, b])
    assert patches_digest([a, b]) != patches_digest([b, a])
    assert patches_digest([]) != patches_digest([a])


def test_the_guest_identity_follows_the_image_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds with one release are two guests: each gets its own snapshot."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(guest_image, "root_image", lambda log: tmp_path / "root.img")
    kernel = config.Kernel("6.1-built", "6.1.192-kblog")
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"bzImage one")
    two.write_bytes(b"bzImage two")
    first = guest_image.prepare_built(kernel, "6.1.192-3", one, log=lambda msg: None)
    second = guest_image.prepare_built(kernel, "6.1.192-3", two, log=lambda msg: None)
    assert first.identity != second.identity
    assert first.initrd == second.initrd  # shared: it depends on no kernel
    accel = vm.Accel("tcg", "test")
    assert snapshot.state_path(first, accel) != snapshot.state_path(second, accel)


def test_the_builtin_initramfs_loads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    initrd = guest_image.builtin_initramfs(log=lambda msg: None)
    out = tmp_path / "unpacked"
    out.mkdir()
    subprocess.run(["cpio", "--quiet", "-i", "-d", "-F", str(initrd)], cwd=out, check=True)
    assert (out / "etc" / "modules").read_bytes() == b""
    assert list((out / "lib" / "modules").iterdir()) == []
    assert (out / "init").read_bytes() == guest_image.INIT_SCRIPT.read_bytes()


# --- the patched tree ------------------------------------------------------------------

PATCH_A = """\
--- a/kernel/sys.c
+++ b/kernel/sys.c
@@ -1,2 +1,2 @@
 int one;
-int two;
+int two_patched;
"""

PATCH_B = """\
--- a/fs/new.c\t2026-11-29 10:00:00
+++ b/fs/new.c\t2026-11-29 10:00:00
@@ -0,0 +1 @@
+int added;
"""


def test_patched_files_reads_both_headers_once() -> None:
    assert patched_files(PATCH_A) == ["kernel/sys.c"]
    assert patched_files(PATCH_B) == ["fs/new.c"]
    creation = "--- /dev/null\n+++ b/fs/created.c\n@@ -0,0 +1 @@\n+x\n"
    assert patched_files(creation) == ["fs/created.c"]
    with pytest.raises(kernel_build.KernelBuildError, match="outside the kernel tree"):
        patched_files("--- a/../../etc/passwd\n+++ b/../../etc/passwd\n")


@pytest.fixture
def pristine(tmp_path: Path) -> Path:
    root = tmp_path / "pristine"
    (root / "kernel").mkdir(parents=True)
    (root / "fs").mkdir()
    (root / "kernel" / "sys.c").write_text("int one;\nint two;\n")
    (root / "fs" / "new.c").write_text("")
    (root / "Makefile").write_text("all:\n")
    old = time.time() - 3600  # as unpacked: older than any object built since
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    return root


def _snapshot(root: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p.relative_to(root)): (p.read_text(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_patching_leaves_the_pristine_tree_alone(pristine: Path, tmp_path: Path) -> None:
    before = _snapshot(pristine)
    tree = tmp_path / "work" / "linux"
    tree.parent.mkdir()
    patch_a = tmp_path / "a.patch"
    patch_a.write_text(PATCH_A)
    prepare_tree(pristine, tree, [patch_a])
    assert (tree / "kernel" / "sys.c").read_text() == "int one;\nint two_patched;\n"
    assert _snapshot(pristine) == before
    # Untouched files are links into the pristine tree, not copies.
    assert (tree / "Makefile").stat().st_ino == (pristine / "Makefile").stat().st_ino
    assert (tree / "kernel" / "sys.c").stat().st_ino != (pristine / "kernel/sys.c").stat().st_ino


def test_the_same_patches_again_touch_nothing(pristine: Path, tmp_path: Path) -> None:
    tree = tmp_path / "work" / "linux"
    tree.parent.mkdir()
    patch_a = tmp_path / "a.patch"
    patch_a.write_text(PATCH_A)
    prepare_tree(pristine, tree, [patch_a])
    after_first = _snapshot(tree)
    prepare_tree(pristine, tree, [patch_a])
    assert _snapshot(tree) == after_first


def test_a_dropped_patch_is_undone_with_a_fresh_mtime(pristine: Path, tmp_path: Path) -> None:
    """make must rebuild a file a patch no longer changes: its mtime has to move on."""
    before = _snapshot(pristine)
    tree = tmp_path / "work" / "linux"
    tree.parent.mkdir()
    patch_a, patch_b = tmp_path / "a.patch", tmp_path / "b.patch"
    patch_a.write_text(PATCH_A)
    patch_b.write_text(PATCH_B)
    prepare_tree(pristine, tree, [patch_a])
    patched_at = (tree / "kernel" / "sys.c").stat().st_mtime
    prepare_tree(pristine, tree, [patch_b])
    sys_c = tree / "kernel" / "sys.c"
    assert sys_c.read_text() == "int one;\nint two;\n"
    assert sys_c.stat().st_mtime >= patched_at > before["kernel/sys.c"][1]
    assert (tree / "fs" / "new.c").read_text() == "int added;\n"
    prepare_tree(pristine, tree, [])
    assert _snapshot(tree)["fs/new.c"][0] == ""
    assert _snapshot(pristine) == before


def test_a_patch_that_does_not_apply_names_itself(pristine: Path, tmp_path: Path) -> None:
    tree = tmp_path / "work" / "linux"
    tree.parent.mkdir()
    bad = tmp_path / "bad.patch"
    bad.write_text(PATCH_A.replace("-int two;", "-int three;"))
    with pytest.raises(kernel_build.KernelBuildError, match=r"applying bad.patch failed"):
        prepare_tree(pristine, tree, [bad])
    # The next attempt starts again from the pristine file.
    good = tmp_path / "good.patch"
    good.write_text(PATCH_A)
    prepare_tree(pristine, tree, [good])
    assert (tree / "kernel" / "sys.c").read_text() == "int one;\nint two_patched;\n"


# --- a real build, booted ---------------------------------------------------------------


# What a post's shell would show on the built kernel: its release, sudo through PAM,
# the agent as PID 1 (ps reads /proc; the agent names itself), and the kernel's log
# through dmesg.
GUEST_CHECK = "uname -r; sudo -n id -u; ps -o comm= -p 1; sudo -n dmesg | head -n 1"


@pytest.mark.vm
def test_the_built_kernel_boots_and_its_agent_answers() -> None:
    """Builds the guest kernel (about 7.5 min on 2 cores the first time, then found
    in the cache), saves its snapshot like a stock kernel's, and runs a shell in the
    restored guest."""
    lines: list[str] = []
    built = kernel_build.build(progress=lambda elapsed, line: lines.append(line), log=lines.append)
    assert built.release.endswith("-kblog")
    artifacts = kernel_build.guest_artifacts(built, log=lambda msg: None)
    accel = vm.choose_accel(artifacts, log=lambda msg: None)
    state = snapshot.ensure(artifacts, accel, log=lambda msg: None)
    with vm.VM(artifacts, accel, restore=state) as guest:
        assert guest.agent is not None
        hello = guest.agent.request("hello")
        output = _run(guest.agent, GUEST_CHECK)
    assert hello["kernel"] == built.release
    release, uid, init, first_log = output.replace("\r", "").splitlines()
    assert (release, uid, init) == (built.release, "0", "kblog-agent")
    # The build identity is the sandbox's, not this machine's.
    assert f"Linux version {built.release} (user@kblog)" in first_log, first_log


def _run(agent: AgentClient, script: str, timeout: float = 60) -> str:
    """What `script` prints on a terminal of the guest's user, up to a marker it ends with.

    The shell stays alive after the marker: the agent forwards a session's output on
    until its exit, and output still in flight in the pty when the program exits can
    come too late for that (seen once here), so nothing waits for an exit.
    """
    output = bytearray()
    done = threading.Event()

    def received(session: str, data: bytes) -> None:
        output.extend(data)
        if MARKER in output:
            done.set()

    agent.on_output = received
    # The shell computes the marker: an echo of the typed text never contains it.
    argv = ["bash", "-c", f"{script}; echo END-$((6 * 7)); sleep 600"]
    agent.request("spawn", session="check", argv=argv, user=config.GUEST_USER)
    assert done.wait(timeout), output.decode(errors="replace")
    return output[: output.index(MARKER)].decode(errors="replace")


MARKER = b"END-42"

"""A guest kernel built from Debian's source: the config check, the cache keys, the
patched tree, and one real build booted in a VM (cached, so only a first run pays)."""

from __future__ import annotations

import dataclasses
import fcntl
import io
import os
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest
from syscall_post import check_syscall_run, syscall_scenario

from runner import config, execute
from runner import guests as guests_module
from runner.guest import image as guest_image
from runner.guest import snapshot, vm
from runner.kernels import build as kernel_build
from runner.kernels import source as kernel_source
from runner.kernels.build import FRAGMENT, build_key, parse_config, unmet_options

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


def test_unmet_options_names_the_one_kconfig_dropped() -> None:
    fragment = "CONFIG_VIRTIO_BLK=y\nCONFIG_HW_RANDOM_VIRTIO=y\n# CONFIG_KERNEL_XZ is not set\n"
    dotconfig = "CONFIG_VIRTIO_BLK=y\n# CONFIG_HW_RANDOM_VIRTIO is not set\n"
    assert unmet_options(fragment, dotconfig) == [
        "CONFIG_HW_RANDOM_VIRTIO=y is not in .config: its dependencies are off (.config: not set)"
    ]


def test_unmet_options_sees_a_changed_value_and_a_missing_line() -> None:
    fragment = 'CONFIG_EXT4_FS=y\nCONFIG_LOCALVERSION="-kblog"\nCONFIG_OVERLAY_FS=y\n'
    dotconfig = 'CONFIG_EXT4_FS=m\nCONFIG_LOCALVERSION=""\n'
    assert unmet_options(fragment, dotconfig) == [
        "CONFIG_EXT4_FS=y is not in .config: its dependencies are off (.config: m)",
        'CONFIG_LOCALVERSION="-kblog" is not in .config: its dependencies are off (.config: "")',
        "CONFIG_OVERLAY_FS=y is not in .config: its dependencies are off (.config: not set)",
    ]


def test_an_option_turned_off_is_met_when_absent() -> None:
    assert unmet_options("# CONFIG_KERNEL_XZ is not set\n", "CONFIG_KERNEL_GZIP=y\n") == []
    assert unmet_options("# CONFIG_KERNEL_XZ is not set\n", "CONFIG_KERNEL_XZ=y\n") == [
        "CONFIG_KERNEL_XZ=n is not in .config: its dependencies are off (.config: y)"
    ]


def test_the_fragment_carries_the_measured_recipe_and_a_release_of_its_own() -> None:
    wanted = parse_config(FRAGMENT.read_text())
    missing = [name for name in FACTS_OPTIONS if wanted.get(f"CONFIG_{name}") != "y"]
    assert missing == []
    assert wanted["CONFIG_LOCALVERSION"] == '"-kblog"'
    # Everything built in: the initramfs of a built kernel loads no modules.
    assert "m" not in wanted.values()


# --- cache keys ------------------------------------------------------------------------


def test_the_fragments_credited_are_those_the_config_carries(tmp_path: Path) -> None:
    """guest.config first, always; another fragment only where the post's own steps
    put every one of its settings into .config (episode 4's debug.config)."""
    (tmp_path / "guest.config").write_text("CONFIG_A=y\n")
    (tmp_path / "debug.config").write_text("CONFIG_DEBUG_INFO=y\n# CONFIG_X is not set\n")
    (tmp_path / "zz.config").write_text("CONFIG_Z=y\n")
    (tmp_path / "notes.txt").write_text("CONFIG_A=y\n")
    names = [p.name for p in kernel_build.fragments_met(tmp_path, "CONFIG_A=y\n")]
    assert names == ["guest.config"]
    with_debug = "CONFIG_A=y\nCONFIG_DEBUG_INFO=y\nCONFIG_Z=m\n"
    names = [p.name for p in kernel_build.fragments_met(tmp_path, with_debug)]
    assert names == ["guest.config", "debug.config"]


def test_build_key_follows_series_source_fragment_and_post() -> None:
    key = build_key("6.1", "6.1.192-3", "CONFIG_A=y\n", "ep3")
    assert key == build_key("6.1", "6.1.192-3", "CONFIG_A=y\n", "ep3")
    assert key != build_key("6.1", "6.1.192-4", "CONFIG_A=y\n", "ep3")
    assert key != build_key("6.1", "6.1.192-3", "CONFIG_A=y\nCONFIG_B=y\n", "ep3")
    assert key != build_key("6.12", "6.1.192-3", "CONFIG_A=y\n", "ep3")
    other_post = build_key("6.1", "6.1.192-3", "CONFIG_A=y\n", "ep4 proc/version")
    assert other_post != key
    # Two posts' workspaces of one source and fragment are one family: seed() finds it.
    assert other_post.split("-")[0] == key.split("-")[0]
    assert other_post.endswith("-6.1-ep4-proc-version")


def test_the_recipe_patches_first_then_configures_and_builds() -> None:
    steps = kernel_build.recipe("/home/user", ["/home/user/p/one.patch"], jobs=2)
    assert steps[0] == [
        "patch", "-p1", "-Z", "--fuzz=0", "-d", "/home/user/linux", "-i", "/home/user/p/one.patch"
    ]  # fmt: skip
    make = ["make", "-C", "/home/user/linux", "O=/home/user/build"]
    assert steps[1:] == [
        [*make, "KCONFIG_ALLCONFIG=/home/user/kernel/guest.config", "allnoconfig"],
        [*make, "-j2", "bzImage"],
    ]


def test_stale_files_are_changed_files_dated_before_the_last_build() -> None:
    before = {"kernel/sys.c": "aaa", "fs/gone.c": "bbb"}
    now = {"kernel/sys.c": "ccc", "mm/new.c": "ddd"}
    dates = {"kernel/sys.c": 100.0, "mm/new.c": 300.0, "fs/gone.c": 50.0}
    # sys.c changed but is older than the build at 200; gone.c is back to pristine
    # (an old date); new.c is newer: make saw it.
    assert kernel_build.stale_files(now, before, dates, accepted_at=200.0) == [
        "fs/gone.c",
        "kernel/sys.c",
    ]
    assert kernel_build.stale_files(before, before, {}, accepted_at=200.0) == []


def test_the_guest_identity_follows_the_image_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds with one release are two guests: each gets its own snapshot."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "root.img").write_bytes(b"disk")
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
    # The root disk made again under its name (a rebuilt Docker image's): another guest.
    before = snapshot.state_path(first, accel)
    (tmp_path / "root.img").write_bytes(b"disk, made again")
    assert snapshot.state_path(first, accel) != before


def test_each_posts_kernel_keeps_its_own_saved_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Episode 3's and episode 4's kernels share a release: saving one's guest must not
    delete the other's (each run would boot the other cold), and a pruned workspace
    takes its saved guests with it, no one else's."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "root.img").write_bytes(b"disk")
    monkeypatch.setattr(guest_image, "root_image", lambda log: tmp_path / "root.img")
    accel = vm.Accel("tcg", "test")
    guests = {}
    for post in ("episode-3", "episode-4", "episode-4-again"):
        ws = kernel_build.workspace("6.1", "6.1.192-3", "CONFIG_A=y\n", post)
        ws.objects.mkdir(parents=True)
        (ws.top / ".lock").write_text("")
        image = ws.top / "bzImage"
        image.write_bytes(f"bzImage of {post}".encode())
        built = kernel_build.BuiltKernel("6.1", "6.1.192-3", "6.1.192-kblog", image, ws.objects)
        guests[post] = kernel_build.guest_artifacts(built, log=lambda msg: None)
    states = {post: snapshot.state_path(art, accel) for post, art in guests.items()}
    assert states["episode-3"] != states["episode-4"]
    states["episode-3"].parent.mkdir(parents=True)
    older = states["episode-3"].with_name(
        states["episode-3"].name.rsplit("-", 1)[0] + "-0123456789abcdef.state"
    )
    # Saved before each workspace had its own: named by the release alone.
    unowned = states["episode-3"].parent / "6.1.192-kblog-tcg-fedcba9876543210.state"
    for state in (*states.values(), older, unowned):
        state.write_bytes(b"saved guest")
    snapshot.drop_superseded(guests["episode-3"], accel)
    assert not older.exists()  # an agent or QEMU since changed: never restored again
    assert not unowned.exists()  # no built kernel boots without a workspace now
    assert states["episode-3"].exists() and states["episode-4"].exists()
    # Episode 4's workspace unused for long: claiming episode 3's removes it, and its guest.
    ep4_top = states["episode-4"].parent.parent / "kernel-build"
    long_ago = time.time() - kernel_build.PRUNE_AFTER - 3600
    for lock in ep4_top.glob("*-episode-4/.lock"):
        os.utime(lock, (long_ago, long_ago))
    mine = kernel_build.workspace("6.1", "6.1.192-3", "CONFIG_A=y\n", "episode-3")
    with kernel_build.claimed(mine, removed=guests_module.drop_saved_guests):
        pass
    assert not list(ep4_top.glob("*-episode-4"))
    assert not states["episode-4"].exists()
    assert states["episode-3"].exists()
    assert states["episode-4-again"].exists()  # a key that starts with the pruned one's


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


# --- where built kernels are kept ---------------------------------------------------------


def _fake_source_deb(root: Path, version: str) -> Path:
    """A linux-source package as Debian ships it, small: a tarball under usr/src."""
    pkg = root / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: linux-source-6.1\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: test <test@example.org>\nDescription: test\n"
    )
    tarball = pkg / kernel_source.tarball(config.kernel("6.1"))
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:xz") as tar:
        data = b"all:\n"
        info = tarfile.TarInfo("linux-source-6.1/Makefile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    deb = root / "linux-source.deb"
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(deb)], capture_output=True, check=True)
    return deb


def test_a_kept_deb_is_the_source_without_apt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Docker image's case: no apt lists, one .deb per series, unpacked into the
    kernel cache; the version is the pin (a kept .deb of another is refused)."""
    debs = tmp_path / "debs"
    debs.mkdir()
    deb = _fake_source_deb(tmp_path, "6.1.999-1")
    deb.rename(debs / "linux-source-6.1.deb")
    monkeypatch.setenv(kernel_source.DEB_ENV, str(debs))
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "read-only-cache"))
    monkeypatch.setenv(config.KERNEL_CACHE_ENV, str(tmp_path / "kernels"))

    def no_apt(package: str) -> dict[str, str]:
        raise AssertionError(f"apt was asked about {package}")

    monkeypatch.setattr(kernel_source.debian, "show", no_apt)
    pinned = dataclasses.replace(config.kernel("6.1"), source="6.1.999-1")
    source = kernel_source.fetch(pinned, log=lambda msg: None)
    assert source.version == "6.1.999-1"
    assert source.package == "linux-source-6.1"
    assert source.tree == tmp_path / "kernels" / "kernel-source" / "6.1.999-1" / "linux-source-6.1"
    assert (source.tree / "Makefile").read_text() == "all:\n"
    assert not (tmp_path / "read-only-cache").exists()


def test_a_missing_kept_deb_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel_source.DEB_ENV, str(tmp_path))
    with pytest.raises(kernel_source.SourceError, match=r"no linux-source-6\.12\.deb in it"):
        kernel_source.kept_deb(config.kernel("6.12"))


def test_a_kept_deb_of_another_version_than_the_pin_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    _fake_source_deb(tmp_path, "6.1.998-1").rename(debs / "linux-source-6.1.deb")
    monkeypatch.setenv(kernel_source.DEB_ENV, str(debs))
    monkeypatch.setenv(config.KERNEL_CACHE_ENV, str(tmp_path / "kernels"))
    pinned = dataclasses.replace(config.kernel("6.1"), source="6.1.999-1")
    with pytest.raises(kernel_source.SourceError, match=r"got 6\.1\.998-1, not the pinned"):
        kernel_source.fetch(pinned, log=lambda msg: None)
    assert not list((tmp_path / "kernels" / "kernel-source").glob("6.1*"))


def test_a_source_debian_no_longer_offers_fails_in_one_line_naming_the_bump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pinned version asked of the real apt: one that never existed is refused
    with the version apt does offer and the command that moves the pin."""
    monkeypatch.delenv(kernel_source.DEB_ENV, raising=False)
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    gone = dataclasses.replace(config.kernel("6.12"), source="6.12.1-1~deb12u1")
    newest = kernel_source.newest_offered(gone)
    with pytest.raises(kernel_source.SourceError) as caught:
        kernel_source.fetch(gone, log=lambda msg: None)
    said = str(caught.value)
    assert "\n" not in said
    assert said.startswith(
        f"Debian no longer offers linux-source-6.12 6.12.1-1~deb12u1 (pinned for kernel "
        f"6.12): the newest it offers is {newest}; move the pin with `invoke kernels --bump`"
    )


def test_built_kernels_and_their_guests_go_to_the_kernel_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything a built kernel writes, and only that, goes to KBLOG_KERNEL_CACHE."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    assert config.kernel_cache_dir() == config.cache_dir()  # unless told otherwise
    kernels = tmp_path / "kernels"
    monkeypatch.setenv(config.KERNEL_CACHE_ENV, str(kernels))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "root.img").write_bytes(b"disk")
    monkeypatch.setattr(guest_image, "root_image", lambda log: tmp_path / "cache" / "root.img")
    workspace = kernel_build.workspace("6.1", "6.1.192-3", "CONFIG_A=y\n", "ep3")
    assert workspace.top.parent == kernels / "kernel-build"
    assert kernel_source.source_dir("6.1.192-3").parent == kernels / "kernel-source"
    image = tmp_path / "bzImage"
    image.write_bytes(b"bzImage")
    built = guest_image.prepare_built(
        config.Kernel("6.1-built", "6.1.192-kblog"), "6.1.192-3", image, log=lambda msg: None
    )
    assert built.initrd.parent == kernels / "images"
    accel = vm.Accel("tcg", "test")
    assert snapshot.state_path(built, accel).parent == kernels / "snapshots"
    stock = dataclasses.replace(built, cache=config.cache_dir())
    assert snapshot.state_path(stock, accel).parent == tmp_path / "cache" / "snapshots"


# --- the workspace ----------------------------------------------------------------------


@pytest.fixture
def pristine(tmp_path: Path) -> Path:
    root = tmp_path / "pristine" / "linux"
    (root / "kernel").mkdir(parents=True)
    (root / "fs").mkdir()
    (root / "kernel" / "sys.c").write_text("int one;\nint two;\n")
    (root / "fs" / "old.c").write_text("int old;\n")
    (root / "Makefile").write_text("all:\n")
    (root / "link").symlink_to("Makefile")
    old = time.time() - 3600  # as unpacked: older than any object built since
    for path in root.rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)
    return root


def _workspace(tmp_path: Path) -> kernel_build.Workspace:
    return kernel_build.Workspace(tmp_path / "ws")


def _state(root: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p.relative_to(root)): (p.read_text(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_checkout_links_the_pristine_files(pristine: Path, tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    kernel_build.checkout(pristine, ws, as_root=False)
    sys_c = ws.tree / "kernel" / "sys.c"
    assert sys_c.stat().st_ino == (pristine / "kernel" / "sys.c").stat().st_ino
    assert (ws.tree / "link").readlink() == Path("Makefile")
    assert ws.objects.is_dir()
    assert kernel_build.differing(pristine, ws.tree) == {}


def test_checkout_undoes_what_a_post_did(pristine: Path, tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    kernel_build.checkout(pristine, ws, as_root=False)
    before = _state(pristine)
    # What patch and a reader's shell do: replace a file, add one, delete one, add a
    # directory, repoint a link.
    sys_c = ws.tree / "kernel" / "sys.c"
    sys_c.unlink()
    sys_c.write_text("int one;\nint patched;\n")
    (ws.tree / "fs" / "new.c").write_text("int added;\n")
    (ws.tree / "fs" / "old.c").unlink()
    (ws.tree / "extra").mkdir()
    (ws.tree / "extra" / "x").write_text("x")
    (ws.tree / "link").unlink()
    (ws.tree / "link").symlink_to("kernel")
    found = kernel_build.differing(pristine, ws.tree)
    assert set(found) == {"kernel/sys.c", "fs/new.c", "fs/old.c", "extra/x", "link"}
    assert found["fs/old.c"] == "deleted"
    kernel_build.checkout(pristine, ws, as_root=False)
    assert kernel_build.differing(pristine, ws.tree) == {}
    assert _state(ws.tree) == before == _state(pristine)
    assert not (ws.tree / "extra").exists()


def test_a_write_through_a_link_is_caught_at_the_next_checkout(
    pristine: Path, tmp_path: Path
) -> None:
    ws = _workspace(tmp_path)
    kernel_build.checkout(pristine, ws, as_root=False)
    with open(ws.tree / "kernel" / "sys.c", "a") as same_inode:
        same_inode.write("int oops;\n")
    with pytest.raises(kernel_build.KernelBuildError, match=r"sys\.c changed after it was"):
        kernel_build.checkout(pristine, ws, as_root=False)


def _fake_build(ws: kernel_build.Workspace, fragment: str, dotconfig: str) -> None:
    objects = ws.objects
    (objects / "arch" / "x86" / "boot").mkdir(parents=True, exist_ok=True)
    (objects / "include" / "config").mkdir(parents=True, exist_ok=True)
    (objects / "include" / "config" / "kernel.release").write_text("6.1.192-kblog\n")
    (objects / ".config").write_text(dotconfig)
    (objects / "arch" / "x86" / "boot" / "bzImage").write_bytes(os.urandom(64))


def test_accept_checks_the_image_the_config_and_the_dates(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    ws = _workspace(tmp_path)
    kernel_build.checkout(pristine, ws, as_root=False)
    fragment = "CONFIG_VIRTIO_BLK=y\n"
    with pytest.raises(kernel_build.KernelBuildError, match="no step built the kernel"):
        kernel_build.accept(ws, pristine, "6.1", "6.1.192-3", fragment)
    _fake_build(ws, fragment, "# CONFIG_VIRTIO_BLK is not set\n")
    with pytest.raises(
        kernel_build.KernelBuildError, match=r"CONFIG_VIRTIO_BLK=y is not in \.config"
    ):
        kernel_build.accept(ws, pristine, "6.1", "6.1.192-3", fragment)
    _fake_build(ws, fragment, "CONFIG_VIRTIO_BLK=y\n")
    # A patch dated as its +++ lines say, older than the build: as `patch -Z` leaves it.
    sys_c = ws.tree / "kernel" / "sys.c"
    sys_c.unlink()
    sys_c.write_text("int one;\nint patched;\n")
    dated = time.time() - 600
    os.utime(sys_c, (dated, dated))
    built = kernel_build.accept(ws, pristine, "6.1", "6.1.192-3", fragment)
    assert built.release == "6.1.192-kblog"
    assert built.image.read_bytes() == (ws.objects / kernel_build.BZIMAGE).read_bytes()
    # Edited after the image was made: never built.
    os.utime(sys_c)
    with pytest.raises(kernel_build.KernelBuildError, match="changed after ~/build"):
        kernel_build.accept(ws, pristine, "6.1", "6.1.192-3", fragment)


def test_workspaces_unclaimed_for_long_are_removed_when_another_is_claimed(
    tmp_path: Path,
) -> None:
    """A workspace keeps 1 to 2 GB of objects; one for a fragment or source nothing
    builds any more goes after PRUNE_AFTER, unless someone holds it right now."""
    parent = tmp_path / "kernel-build"
    long_ago = time.time() - kernel_build.PRUNE_AFTER - 3600
    old, held, recent = (parent / name for name in ("old", "held", "recent"))
    for ws in (old, held, recent):
        (ws / "objects").mkdir(parents=True)
        (ws / "objects" / "vmlinux").write_bytes(b"\0" * 1024)
        (ws / ".lock").write_text("")
    for ws in (old, held):
        os.utime(ws / ".lock", (long_ago, long_ago))
    said: list[str] = []
    gone: list[Path] = []
    with open(held / ".lock", "a") as other_runner:
        fcntl.flock(other_runner, fcntl.LOCK_EX)
        mine = kernel_build.Workspace(parent / "mine")
        with kernel_build.claimed(mine, said.append, gone.append):
            assert not old.exists()
            assert held.exists() and recent.exists()
    assert said == [f"removed the kernel workspace {old}, unused for 14 days"]
    assert gone == [old]
    # Claiming dates a workspace: the one just used is not old.
    assert time.time() - (parent / "mine" / ".lock").stat().st_mtime < 60


def test_a_claim_that_waited_on_a_pruned_workspace_makes_it_anew(tmp_path: Path) -> None:
    """A claimer waiting on the lock of a workspace that a prune renames away gets the
    lock of a new one at the same place, never a lock of the removed tree."""
    top = tmp_path / "kernel-build" / "ws"
    top.mkdir(parents=True)
    (top / ".lock").write_text("")
    got: list[bool] = []
    with open(top / ".lock", "a") as pruner:
        fcntl.flock(pruner, fcntl.LOCK_EX)

        def claim() -> None:
            with kernel_build.claimed(kernel_build.Workspace(top)) as ws:
                got.append((ws.top / ".lock").exists())

        waiter = threading.Thread(target=claim)
        waiter.start()
        time.sleep(0.3)  # the claimer has opened the old lock and waits on it
        os.rename(top, tmp_path / "kernel-build" / ".pruned-test")
    waiter.join(10)
    assert got == [True]
    assert (top / ".lock").exists()


def test_accept_removes_objects_make_would_have_kept(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same dates with other content: make sees nothing new, so the objects are
    the old patch's. Those built from the file go, so make builds them again."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    ws = _workspace(tmp_path)
    kernel_build.checkout(pristine, ws, as_root=False)
    fragment = "CONFIG_A=y\n"
    _fake_build(ws, fragment, "CONFIG_A=y\n")
    (ws.objects / "kernel").mkdir()
    (ws.objects / "kernel" / "sys.o").write_bytes(b"old object")
    (ws.objects / "kernel" / ".sys.o.cmd").write_text("deps := /home/user/linux/kernel/sys.c\n")
    (ws.objects / "kernel" / "fork.o").write_bytes(b"unrelated")
    (ws.objects / "kernel" / ".fork.o.cmd").write_text("deps := /home/user/linux/kernel/fork.c\n")
    dated = time.time() - 600
    sys_c = ws.tree / "kernel" / "sys.c"
    sys_c.unlink()
    sys_c.write_text("int first_version;\n")
    os.utime(sys_c, (dated, dated))
    kernel_build.accept(ws, pristine, "6.1", "6.1.192-3", fragment)
    kernel_build.checkout(pristine, ws, as_root=False)
    sys_c.unlink()
    sys_c.write_text("int second_version;\n")
    os.utime(sys_c, (dated, dated))
    with pytest.raises(kernel_build.KernelBuildError, match=r"kernel/sys\.c is not what the last"):
        kernel_build.accept(ws, pristine, "6.1", "6.1.192-3", fragment)
    assert not (ws.objects / "kernel" / "sys.o").exists()
    assert (ws.objects / "kernel" / "fork.o").exists()


def _bytes_state(root: Path) -> dict[str, tuple[bytes, float]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _patch_sys_c(ws: kernel_build.Workspace, text: str, dated: float) -> None:
    sys_c = ws.tree / "kernel" / "sys.c"
    sys_c.unlink()
    sys_c.write_text(text)
    os.utime(sys_c, (dated, dated))


def test_a_new_workspace_is_seeded_from_the_closest_one_and_settled_before_make(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second post's workspace starts from a copy of the objects of the workspace of
    its family whose tree was closest to its own (the other is left as it was). Then
    reconcile() removes the objects built from what this tree no longer has: the first
    post's patched file, pristine again, and a file this post patched with a date
    before that build. A post that applies the first one's patch keeps everything."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    parent = tmp_path / "kernel-build"
    first = kernel_build.Workspace(parent / "abc-6.1-ep3")
    kernel_build.checkout(pristine, first, as_root=False)
    fragment = "CONFIG_A=y\n"
    _fake_build(first, fragment, "CONFIG_A=y\n")
    for rel, data in (("kernel/sys.o", "patched sys"), ("fs/old.o", "old"), ("Make.o", "mk")):
        (first.objects / rel).parent.mkdir(parents=True, exist_ok=True)
        (first.objects / rel).write_text(data)
        source = rel.replace(".o", ".c") if rel != "Make.o" else "Makefile"
        cmd = first.objects / rel.replace(Path(rel).name, f".{Path(rel).name}.cmd")
        cmd.write_text(f"deps := /home/user/linux/{source}\n")
    dated = time.time() - 600  # as `patch -Z` dates it: before the build
    _patch_sys_c(first, "int patched;\n", dated)
    kernel_build.accept(first, pristine, "6.1", "6.1.192-3", fragment)
    (first.top / ".lock").write_text("")
    before = _bytes_state(first.objects)

    def new(name: str) -> kernel_build.Workspace:
        ws = kernel_build.Workspace(parent / name)
        kernel_build.checkout(pristine, ws, as_root=False)
        return ws

    assert kernel_build.seed(new("xyz-6.1-proc"), {}) is None  # no workspace of its family
    second = new("abc-6.1-proc")
    old_c = second.tree / "fs" / "old.c"  # this post's patch, dated before the seed's build
    old_c.unlink()
    old_c.write_text("int changed;\n")
    os.utime(old_c, (dated, dated))
    now = kernel_build.differing(pristine, second.tree)
    assert kernel_build.seed(second, now) == first.top
    assert kernel_build.seed(second, now) is None  # it has objects: left alone
    assert _bytes_state(second.objects) == before  # contents and dates
    assert _bytes_state(first.objects) == before
    copied = second.objects / "fs" / "old.o"
    assert copied.stat().st_ino != (first.objects / "fs" / "old.o").stat().st_ino
    assert kernel_build.reconcile(second, pristine) == ["fs/old.c", "kernel/sys.c"]
    assert not (second.objects / "kernel" / "sys.o").exists()
    assert not (second.objects / "fs" / "old.o").exists()
    assert (second.objects / "Make.o").exists()
    assert kernel_build.reconcile(second, pristine) == []  # settled: the record says so
    assert _bytes_state(first.objects) == before
    kernel_build.accept(second, pristine, "6.1", "6.1.192-3", fragment)
    (second.top / ".lock").write_text("")

    # A third post applies the first one's patch: seeded from the first (its tree is
    # the closer one, though the second's record names fewer files), it keeps all.
    third = new("abc-6.1-same")
    _patch_sys_c(third, "int patched;\n", dated)
    said: list[str] = []
    kernel_build.settle(third, pristine, said.append)
    assert said == ["seeding the kernel workspace abc-6.1-same from abc-6.1-ep3"]
    assert (third.objects / "kernel" / "sys.o").read_text() == "patched sys"
    assert (third.objects / "fs" / "old.o").exists()
    # A copy cut short leaves its marker: the next one wipes it and copies again.
    fourth = new("abc-6.1-fourth")
    (fourth.objects / kernel_build.SEEDING).write_text("")
    (fourth.objects / "half.o").write_text("")
    with open(first.top / ".lock", "a") as held:  # busy: never copied while it builds
        fcntl.flock(held, fcntl.LOCK_EX)
        assert kernel_build.seed(fourth, {}) in (second.top, third.top)
    assert not (fourth.objects / "half.o").exists()
    assert not (fourth.objects / kernel_build.SEEDING).exists()
    # Objects of its own (a cold build under way) are never replaced.
    fifth = new("abc-6.1-fifth")
    (fifth.objects / "vmlinux.o").write_text("")
    assert kernel_build.seed(fifth, {}) is None


def test_a_seed_of_another_configuration_is_replaced_after_the_configuration_step(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A debug post's new workspace is first seeded from the closest tree, which may
    be a kernel built without debug info (the seed is chosen before any .config
    exists). Once its configuration step wrote the debug .config, that seed would be
    compiled again whole: the objects of the workspace built with that .config
    replace it. A build that already followed, or no such workspace, is left alone."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    parent = tmp_path / "kernel-build"
    fragment = "CONFIG_A=y\n"
    plain, debug = "CONFIG_A=y\n", "CONFIG_A=y\nCONFIG_DEBUG_INFO_DWARF5=y\n"

    def new(name: str) -> kernel_build.Workspace:
        ws = kernel_build.Workspace(parent / name)
        kernel_build.checkout(pristine, ws, as_root=False)
        return ws

    def built(name: str, dotconfig: str) -> kernel_build.Workspace:
        ws = new(name)
        _fake_build(ws, fragment, dotconfig)
        (ws.objects / "kernel.o").write_text(name)
        kernel_build.accept(ws, pristine, "6.1", "6.1.192-3", fragment)
        (ws.top / ".lock").write_text("")
        return ws

    built("abc-6.1-a-plain", plain)  # first by name among equally close trees
    built("abc-6.1-b-debug", debug)
    second = new("abc-6.1-c-second-debug")
    said: list[str] = []
    seeded = kernel_build.settle(second, pristine, said.append)
    assert said == ["seeding the kernel workspace abc-6.1-c-second-debug from abc-6.1-a-plain"]
    assert seeded == plain.encode()
    kernel_build.reseed(second, pristine, seeded, said.append)  # .config unchanged
    assert len(said) == 1

    (second.objects / ".config").write_text(debug)  # the post's allnoconfig
    kernel_build.reseed(second, pristine, seeded, said.append)
    assert said[1:] == ["seeding the kernel workspace abc-6.1-c-second-debug from abc-6.1-b-debug"]
    assert (second.objects / "kernel.o").read_text() == "abc-6.1-b-debug"
    assert not (second.objects / kernel_build.SEEDING).exists()

    # A .config no workspace was built with: the seed stays, make compiles it again.
    third = new("abc-6.1-d-third")
    seeded = kernel_build.settle(third, pristine)
    assert seeded is not None
    (third.objects / ".config").write_text("CONFIG_A=y\nCONFIG_KASAN=y\n")
    kernel_build.reseed(third, pristine, seeded, said.append)
    assert len(said) == 2 and (third.objects / "kernel.o").exists()

    # The make after the seed built the kernel itself (its .config changed on the way,
    # as syncconfig may): that build is kept, whatever a sibling has.
    fourth = new("abc-6.1-e-fourth")
    seeded = kernel_build.settle(fourth, pristine)
    assert seeded is not None
    (fourth.objects / ".config").write_text(debug)
    (fourth.objects / "vmlinux").write_text("fresh")
    kernel_build.reseed(fourth, pristine, seeded, said.append)
    assert len(said) == 2 and (fourth.objects / "vmlinux").read_text() == "fresh"


def test_the_patch_a_built_kernel_came_from_is_found_by_its_lines(tmp_path: Path) -> None:
    """Episode 3's two patches change the same three files; the provenance names the
    one whose added lines the changed tree holds."""
    tree = tmp_path / "linux"
    twelve = config.KMOD / "syscall" / "kblog_hello-6.12.patch"
    targets = kernel_build.patch_targets(twelve.read_text())
    assert sorted(targets) == [
        "arch/x86/entry/syscalls/syscall_64.tbl", "include/linux/syscalls.h", "kernel/sys.c"
    ]  # fmt: skip
    assert "463\tcommon\tkblog_hello\t\tsys_kblog_hello" in targets[sorted(targets)[0]]
    for rel, added in targets.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("context\n" + "\n".join(added) + "\n")
    changed = dict.fromkeys(targets, "hash")
    assert kernel_build.applied_patch(tree, changed, config.KMOD) == twelve
    # A file changed beyond what the patch touches: no one patch made this tree.
    assert (
        kernel_build.applied_patch(tree, {**changed, "fs/proc/version.c": "h"}, config.KMOD) is None
    )
    assert kernel_build.applied_patch(tree, {}, config.KMOD) is None


# --- a real build, booted ---------------------------------------------------------------


@pytest.mark.vm
def test_a_scenario_builds_boots_and_calls_the_new_system_call() -> None:
    """The post's recipe in the sandbox (a cold build takes about 7 minutes on 2 cores,
    then the workspace makes it seconds), a guest on the built kernel that runs system
    call 451, and the stock 6.1 kernel that does not have it."""
    scenario = syscall_scenario()
    result = execute.run_scenario(scenario, "6.1", log=lambda msg: None)
    check_syscall_run(scenario, result)

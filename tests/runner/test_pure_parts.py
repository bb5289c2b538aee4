"""The runner's pure parts, without a VM: QEMU's argv, the initramfs's module
closure, and the event stream between the container and the host (its activity
throttle too)."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from runner import config, events
from runner.guest import image as guest_image
from runner.guest import vm
from runner.guest.agent.agent import TRANSFER_SERIAL
from runner.guest.image import GuestArtifacts, ImageError
from runner.host import Accel
from runner.scenario import Scenario, Status, Step, StepResult


def _artifacts(tmp_path: Path) -> GuestArtifacts:
    kernel = config.kernel("6.1")
    return GuestArtifacts(
        kernel, "6.1.1", tmp_path / "vmlinuz", tmp_path / "initrd", tmp_path / "root,1.img", "x"
    )


def _value(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_qemu_argv_tcg_boot(tmp_path: Path) -> None:
    argv = vm.qemu_argv(_artifacts(tmp_path), Accel("tcg", "test"), tmp_path, 512)
    assert argv[0].endswith("qemu-system-x86_64")
    assert _value(argv, "-accel") == ["tcg"] and _value(argv, "-smp") == ["1"]
    assert _value(argv, "-m") == ["512"]
    assert "-no-reboot" in argv and "-nodefaults" in argv
    # A comma in a path would end QEMU's option value: it is doubled.
    root, transfer = _value(argv, "-drive")
    assert f"file={tmp_path}/root,,1.img" in root and "readonly=on" in root
    # The root disk's device comes first: the guest's init mounts vda.
    assert _value(argv, "-device")[:2] == [
        "virtio-blk-pci,drive=root",
        f"virtio-blk-pci,drive=transfer,serial={TRANSFER_SERIAL}",
    ]
    assert f"file={tmp_path}/transfer.img" in transfer and "readonly=on" in transfer
    assert "-incoming" not in argv
    assert " ".join(vm.KERNEL_CMDLINE) in argv


def test_qemu_argv_kvm_restore(tmp_path: Path) -> None:
    argv = vm.qemu_argv(_artifacts(tmp_path), Accel("kvm", "test"), tmp_path, 512, incoming=7)
    assert _value(argv, "-accel") == ["kvm"] and _value(argv, "-cpu") == ["host"]
    assert _value(argv, "-incoming") == ["fd:7"]  # a state file QEMU inherits


def _modules(tmp_path: Path, dep: str, builtin: str = "") -> Path:
    (tmp_path / "modules.dep").write_text(dep)
    (tmp_path / "modules.builtin").write_text(builtin)
    return tmp_path


def test_module_closure_loads_dependencies_first(tmp_path: Path) -> None:
    root = _modules(
        tmp_path,
        "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz\n"
        "kernel/fs/jbd2/jbd2.ko.xz:\n"
        "kernel/fs/mbcache.ko.xz:\n"
        "kernel/drivers/virtio/virtio_pci.ko.xz:\n",
        "kernel/lib/crc16.ko\n",
    )
    found = guest_image.module_closure(root, ["ext4", "crc16", "virtio_pci"])
    names = [p.name for p in found]
    assert names == ["jbd2.ko.xz", "mbcache.ko.xz", "ext4.ko.xz", "virtio_pci.ko.xz"]


def test_module_closure_names_a_module_it_cannot_find(tmp_path: Path) -> None:
    root = _modules(tmp_path, "kernel/fs/ext4/ext4.ko:\n")
    with pytest.raises(ImageError, match=r"overlay is neither built in nor in modules\.dep"):
        guest_image.module_closure(root, ["overlay"])


def test_events_round_trip() -> None:
    scenario = Scenario("s", [Step("t", "console", "true"), Step("t", "console", "false")])
    out = io.StringIO()
    log, progress, activity = events.writers(out)
    log("booting")
    progress(1, 2, scenario.steps[1], None)
    activity(1, 2.345, "CC kernel/fork.o")
    activity(1, 3.4, "")
    done = StepResult(1, Status.OK, "$ ", "false", "", 1, 0.1, "guest")
    progress(1, 2, scenario.steps[1], done)
    out.write(events.encode_error("the guest was lost") + "\n")
    out.write("Traceback (most recent call last):\n")

    logged: list[str] = []
    seen: list[tuple[int, int, str, StepResult | None]] = []
    active: list[tuple[int, float, str]] = []
    relay = events.Relay(
        scenario,
        logged.append,
        lambda i, n, step, res: seen.append((i, n, step.input, res)),
        lambda i, elapsed, line: active.append((i, elapsed, line)),
    )
    for line in out.getvalue().splitlines():
        relay.line(line)
    assert logged == ["booting", "Traceback (most recent call last):"]
    assert seen == [(1, 2, "false", None), (1, 2, "false", done)]
    assert active == [(1, 2.3, "CC kernel/fork.o"), (1, 3.4, "")]
    assert relay.error == "the guest was lost"
    # A relay without an activity callback (an older caller) passes over those events.
    quiet = events.Relay(scenario, logged.append)
    for line in out.getvalue().splitlines():
        quiet.line(line)
    assert logged[2:] == ["booting", "Traceback (most recent call last):"]


def test_activity_throttle_waits_then_reports_at_most_once_a_second() -> None:
    now = [10.0]
    reports: list[tuple[int, float, str]] = []
    asked = [0]

    def latest() -> str:
        asked[0] += 1
        return f"line {asked[0]}"

    throttle = events.ActivityThrottle(
        lambda i, elapsed, line: reports.append((i, round(elapsed, 2), line)),
        4,
        started=10.0,
        clock=lambda: now[0],
    )
    for t in (10.0, 10.5, 11.9, 12.0):  # a quick step: silent, and its terminal unread
        now[0] = t
        throttle.tick(latest)
    assert reports == [] and asked == [0]
    for t in (12.1, 12.3, 12.9, 13.1, 13.15, 14.0, 14.2, 20.0):
        now[0] = t
        throttle.tick(latest)
    assert reports == [
        (4, 2.1, "line 1"),
        (4, 3.15, "line 2"),
        (4, 4.2, "line 3"),
        (4, 10.0, "line 4"),
    ]


def test_superseded_root_disks_and_userlands_go_once_they_are_old(tmp_path: Path) -> None:
    """Each agent or package change makes a new root disk (160 MB): the ones made
    long ago go when a new one comes; recent ones stay for other checkouts."""
    long_ago = time.time() - guest_image.STALE_AFTER - 3600
    old, recent, new = (tmp_path / f"root-{n}.img" for n in ("old", "recent", "new"))
    userland = tmp_path / "rootfs-old"
    (userland / "etc").mkdir(parents=True)
    for path in (old, recent, new):
        path.write_bytes(b"disk")
    for path in (old, new, userland):
        os.utime(path, (long_ago, long_ago))
    guest_image._drop_stale(tmp_path, "root-*.img", keep=new)
    assert sorted(p.name for p in tmp_path.glob("root-*.img")) == [new.name, recent.name]
    guest_image._drop_stale(tmp_path, "rootfs-*", keep=tmp_path / "rootfs-new")
    assert not userland.exists()


def test_gdb_mi_strings_and_fields_are_read_as_gdb_writes_them() -> None:
    from runner.debugger import _field, c_string, mi_quote

    assert c_string(r'"Continuing.\n"') == "Continuing.\n"
    assert c_string(r'"a\tb \"q\" \\ \303\251"') == 'a\tb "q" \\ é'  # UTF-8 sent byte by byte
    record = (
        '=breakpoint-created,bkpt={number="2",type="hw breakpoint",'
        'original-location="__do_sys_kblog_hello"}'
    )
    assert _field(record, "number") == "2"
    assert _field(record, "original-location") == "__do_sys_kblog_hello"
    assert _field('^error,msg="No symbol \\"x\\" in current context."', "msg") == (
        'No symbol "x" in current context.'
    )
    assert mi_quote('p "a\\b"') == '"p \\"a\\\\b\\""'


def _wheel(source: Path, sha256: str) -> config.Wheel:
    return config.Wheel("demo", "1.0", "demo-1.0-py3-none-any.whl", source.as_uri(), sha256)


def test_a_guest_wheel_is_checked_against_its_pin(tmp_path: Path, monkeypatch) -> None:
    """A wheel that is not the pinned one is refused and not kept; the pinned one is kept
    and found again without the source; a cached copy cut short is fetched anew."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "demo.whl"
    source.write_bytes(b"the wheel's bytes")
    right = hashlib.sha256(b"the wheel's bytes").hexdigest()
    wheels = tmp_path / "cache" / "wheels"
    with pytest.raises(ImageError, match=f"sha256 {right}, but runner/config.py pins 0+$"):
        guest_image.fetch_wheel(_wheel(source, "0" * 64), log=lambda _: None)
    assert list(wheels.iterdir()) == []  # neither the file nor its temporary
    kept = guest_image.fetch_wheel(_wheel(source, right), log=lambda _: None)
    assert kept == wheels / "demo-1.0-py3-none-any.whl"
    assert kept.read_bytes() == b"the wheel's bytes"
    source.unlink()
    assert guest_image.fetch_wheel(_wheel(source, right), log=lambda _: None) == kept
    kept.write_bytes(b"the wheel")  # cut short: not trusted, and the source is gone
    with pytest.raises(ImageError, match="cannot fetch it"):
        guest_image.fetch_wheel(_wheel(source, right), log=lambda _: None)


def test_a_wheels_console_scripts() -> None:
    """drgn's entry points, as its 0.3.0 wheel writes them: the scripts, not the plugins."""
    text = (
        "[console_scripts]\ndrgn = drgn.cli:_main\ndrgn-crash = drgn.internal.crashcli:_main\n\n"
        "[drgn.plugins]\nbuiltin_commands = drgn.commands._builtin\n"
    )
    assert guest_image._console_scripts(text) == {
        "drgn": "drgn.cli:_main",
        "drgn-crash": "drgn.internal.crashcli:_main",
    }

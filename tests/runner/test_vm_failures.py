"""What goes wrong, and how the runner says so: each failure gives one clear error
naming the step, leaves no QEMU and no run dir behind, and the next scenario runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from vmhelp import (
    ROOT,
    TEST_KMOD,
    Guest,
    build,
    is_dead,
    py,
    qemu_children,
    rundirs,
    scenario,
    sh,
)

from runner.execute import run_scenario
from runner.guest import vm
from runner.guest.image import GuestArtifacts
from runner.guest.vm import VM, BootError, VMError
from runner.host import Accel
from runner.judge import verdict
from runner.scenario import ScenarioError, ScenarioResult, Step, StepResult

pytestmark = pytest.mark.vm

QUIET = {"log": lambda msg: None}


def quick_scenario(name: str = "after") -> ScenarioResult:
    """A short scenario that must work: the runner is fine after whatever came before."""
    result = run_scenario(
        scenario(name, sh("t", "echo alive", ["alive"]), py("p", "6 * 7", ["42"])), **QUIET
    )
    assert result.error == ""
    assert [s.matched for s in result.steps] == [True, True]
    return result


# --- a module that does not build, then one that panics the kernel -------------------


def test_broken_build_then_panic_then_next_scenario(guest: Guest) -> None:
    result = run_scenario(
        scenario(
            "panic",
            build("make -C broken_build", expected=["..."]),
            build("make -C broken_build"),
            build("make -C panic_on_load"),
            sh("t", "sudo insmod panic_on_load/panic_on_load.ko", timeout=30),
            sh("t", "echo not reached"),
        ),
        kmod_dir=TEST_KMOD,
        **QUIET,
    )
    broken, unexpected, built, insmod, after = result.steps

    # gcc's own diagnostic: FILE:LINE:COL, at the token after the missing semicolon.
    source = (TEST_KMOD / "broken_build" / "broken_build.c").read_text().splitlines()
    statement = next(n for n, text in enumerate(source, 1) if "never built" in text)
    m = re.search(
        r"broken_build\.c:(\d+):(\d+): error: expected .;. before .return.", broken.output
    )
    assert m, broken.output
    assert int(m.group(1)) == statement + 1
    assert source[statement].strip() == "return 0;"
    assert broken.exit_status not in (None, 0)
    # Behind "...", a failed command fails its step all the same.
    assert broken.status == "ok"
    assert broken.matched is False
    assert f"exited with status {broken.exit_status}" in broken.diff
    assert not verdict.passed(broken)
    # Without any expectation the runner has nothing to hold the status against:
    # the step stays "ok" and only exit_status tells.
    assert unexpected.exit_status == broken.exit_status
    assert (unexpected.status, unexpected.matched) == ("ok", None)
    assert verdict.passed(unexpected)

    assert built.exit_status == 0

    assert insmod.status == "panic"
    assert not verdict.passed(insmod)
    panics = [e for e in insmod.events if e.kind == "panic"]
    assert panics and "panic_on_load: panicking on purpose" in panics[0].line
    assert result.error.startswith("panic:4: "), result.error
    assert "panicked" in result.error
    assert after.status == "not-run"
    assert after.output == result.error

    # Same process, next scenario: a module that only warns, and the guest carries on.
    warn = scenario(
        "warn",
        build("make -C warn_on_load"),
        sh("t", "sudo insmod warn_on_load/warn_on_load.ko", kernel_events={"*": ["WARNING"]}),
        sh("t", "grep -o '^warn_on_load ' /proc/modules", ["warn_on_load "]),
        sh("t", "echo $(( $(cat /proc/sys/kernel/tainted) >> 9 & 1 ))", ["1"]),
        sh("t", "sudo rmmod warn_on_load"),
    )
    warned = run_scenario(warn, kmod_dir=TEST_KMOD, **QUIET)
    assert warned.error == ""
    assert verdict.problems(warn, warned, "6.1") == []
    events = warned.steps[1].events
    assert [e.kind for e in events] == ["WARNING"]
    assert "warn_on_load.c:" in events[0].line
    assert warned.steps[4].exit_status == 0


# --- bad scenarios, a missing QEMU ----------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (sh("no such session!", "ls"), r"bad session name 'no such session!'"),
        (Step("t", "ruby", "puts 1"), r"unknown language 'ruby'"),
        (sh("t", "ls", where="cloud"), r"where='cloud'"),
    ],
    ids=["session", "language", "where"],
)
def test_invalid_step_is_refused_before_boot(guest: Guest, bad: Step, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(ScenarioError, match=rf"^bad:2: {message}"):
        run_scenario(scenario("bad", sh("t", "echo fine"), bad), **QUIET)
    assert time.monotonic() - started < 2  # no guest was started for it
    quick_scenario()


def _path_without_qemu(bindir: Path) -> str:
    """A PATH of one directory that links every command of $PATH except QEMU's."""
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = bindir / name
            if not name.startswith("qemu-system") and not target.exists():
                target.symlink_to(os.path.join(d, name))
    return str(bindir)


def test_qemu_missing(guest: Guest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", _path_without_qemu(tmp_path / "bin"))
    with pytest.raises(VMError, match="qemu-system-x86_64"):
        run_scenario(scenario("noqemu", sh("t", "echo hi")), **QUIET)
    monkeypatch.undo()
    quick_scenario()


# --- guests that never boot ------------------------------------------------------------


def _broken_boot(
    artifacts: GuestArtifacts, accel: Accel, timeout: float | None = None
) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(BootError) as info, VM(artifacts, accel, boot_timeout=timeout):
        pytest.fail("the guest booted")
    return str(info.value), time.monotonic() - started


def test_garbage_initramfs(guest: Guest, tmp_path: Path) -> None:
    artifacts, accel = guest
    junk = tmp_path / "initrd"
    junk.write_bytes(os.urandom(1 << 20))
    message, took = _broken_boot(dataclasses.replace(artifacts, initrd=junk), accel)
    # The kernel finds no init and no root: it panics, and with panic=-1 QEMU exits.
    assert took < 60
    assert message.startswith("guest did not boot (")
    assert "QEMU exited" in message
    tail = message.partition("last console lines:\n")[2]
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in tail, tail
    assert len(tail.splitlines()) <= 25


def test_unreadable_root_disk(guest: Guest, tmp_path: Path) -> None:
    artifacts, accel = guest
    blank = tmp_path / "root.img"
    blank.write_bytes(bytes(8 << 20))
    message, took = _broken_boot(dataclasses.replace(artifacts, root_image=blank), accel)
    assert took < 60
    assert "QEMU exited with status" in message
    assert "kblog-init: cannot mount the root disk" in message


def test_init_that_never_starts_the_agent(guest: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    artifacts, accel = guest
    # The kernel hands words without "=" to init as arguments: init is `busybox sleep 600`.
    cmdline = [p for p in vm.KERNEL_CMDLINE if not p.startswith("rdinit=")]
    monkeypatch.setattr(vm, "KERNEL_CMDLINE", (*cmdline, "rdinit=/bin/busybox", "sleep", "600"))
    message, took = _broken_boot(artifacts, accel, timeout=10)
    assert 10 <= took < 20
    assert "no answer from the guest agent within 10 s" in message
    assert "Run /bin/busybox as init process" in message


# --- interrupted runs ------------------------------------------------------------------


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupt_mid_scenario(guest: Guest, exc: type[BaseException]) -> None:
    done: list[int] = []

    def progress(index: int, total: int, step: Step, res: StepResult | None) -> None:
        if res is not None:
            done.append(index)
        elif index == 2:
            assert qemu_children(), "the guest should be running now"
            raise exc("stop at step 2")

    steps = [sh("t", "echo one"), py("p", "1"), sh("t", "sleep 30"), sh("t", "echo four")]
    with pytest.raises(exc, match="stop at step 2"):
        run_scenario(scenario("interrupted", *steps), progress=progress, **QUIET)
    assert done == [0, 1]
    assert qemu_children() == []
    assert rundirs() == []


def test_killed_runner_takes_its_qemu_along(guest: Guest, tmp_path: Path) -> None:
    path = tmp_path / "long.json"
    path.write_text(
        '{"name": "long", "steps": [{"session": "t", "language": "console",'
        ' "input": "sleep 300", "timeout": 400, "source": "long.json:1"}]}'
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", KBLOG_BACKEND="local")
    runner = subprocess.Popen(
        [sys.executable, "-m", "runner", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in runner.stdout or ()])
    reader.start()
    qemu_pid = 0
    try:
        seen = []
        deadline = time.monotonic() + 120
        while not any("guest up" in line for line in seen):
            assert time.monotonic() < deadline, seen
            assert runner.poll() is None, seen
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        qemus = qemu_children(runner.pid)
        assert len(qemus) == 1
        qemu_pid = qemus[0].pid
        assert rundirs(runner.pid)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        # PR_SET_PDEATHSIG: the kernel kills QEMU as its parent dies.
        deadline = time.monotonic() + 5
        while not is_dead(qemu_pid):
            assert time.monotonic() < deadline, "QEMU outlived its runner"
            time.sleep(0.05)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        reader.join(timeout=10)
        if qemu_pid and not is_dead(qemu_pid):  # an orphan from a failed check
            os.kill(qemu_pid, signal.SIGKILL)
    # The runner died before its cleanup; the next VM start in any process sweeps it.
    left = rundirs(runner.pid)
    assert left, "expected the killed runner's run dir to be left over"
    quick_scenario()
    assert [d for d in left if d.exists()] == []

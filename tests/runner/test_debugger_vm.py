"""gdb on a real guest kernel under the runner (runner/debugger.py): what a step
that waits in vain, a gdb error, a guest step behind a stopped guest and a killed
gdb each give, and that the guest goes on and nothing is left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from vmhelp import TEST_KMOD, Guest, build, children, scenario, sh

from runner import debugger
from runner.debugger import Debugger
from runner.execute import run_scenario
from runner.guest.vm import GDB_SOCKET, VM
from runner.judge import verdict
from runner.scenario import Scenario, Status, Step

pytestmark = pytest.mark.vm

QUIET = {"log": lambda msg: None}


def gdb(text: str, expected: list[str] | None = None, **kw: object) -> Step:
    """A step typed into gdb (session "dbg")."""
    return Step("dbg", "gdb", text, expected=expected, **kw)  # type: ignore[arg-type]


def address_of(symbol: str) -> Step:
    """The kernel address of `symbol` (KASLR moves it each boot), remembered as @addr@."""
    return sh("t", f"sudo grep -w {symbol} /proc/kallsyms", [f"@addr@ T {symbol}"])


def no_gdb_left() -> None:
    assert [p for p in children(os.getpid()) if p.comm == "gdb" and p.state != "Z"] == []


def test_a_breakpoint_never_hit_fails_in_time_naming_it_and_the_guest_goes_on(
    guest: Guest,
) -> None:
    steps = scenario(
        "never",
        build("true"),  # gdb in the sandbox: Ctrl-C must reach it through bubblewrap
        address_of("__x64_sys_reboot"),  # nothing reboots the guest
        gdb("hbreak *0x@addr@", ["Hardware assisted breakpoint 1 at 0x..."]),
        gdb("continue", ["Continuing."], output="later"),
        gdb("continue", ["..."], output="collect", timeout=3),
        sh("t", "echo alive", ["alive"]),
    )
    heard: list[tuple[int, str]] = []
    result = run_scenario(
        steps, kmod_dir=TEST_KMOD, activity=lambda i, _t, line: heard.append((i, line)), **QUIET
    )
    _, _, _, started, collect, after = result.steps
    # The live display's line while it waited: what for, and where.
    waiting = "gdb: 'continue' waits for the guest to stop at a breakpoint (*0x"
    assert any(i == 4 and line.startswith(waiting) for i, line in heard), heard
    assert started.status == Status.STARTED and started.matched is True
    assert collect.status == Status.TIMEOUT
    assert 3 <= collect.duration < 8  # the timeout, then Ctrl-C and `info breakpoints`
    assert "waited 3 s for the guest to stop" in collect.detail
    assert "hw breakpoint" in collect.detail  # gdb's own listing of what it waited at
    assert "gdb detached from the guest, which went on" in collect.detail
    (problem,) = verdict.problems(steps, result, "6.1")
    assert problem.startswith("never:5: step 5 (dbg: 'continue'")
    assert "gdb's guest did not stop, or gdb did not answer, within 3 s" in problem
    assert after.matched is True, after  # detached: the guest answers again
    assert result.error == ""
    no_gdb_left()


def test_a_gdb_error_fails_its_step_with_gdbs_message(guest: Guest) -> None:
    steps = scenario(
        "error",
        gdb("frobnicate", []),
        gdb("hbreak no_such_function", ['No symbol table is loaded.  Use the "file" command.']),
        gdb("detach", ["..."]),  # it attached afresh: the guest waits for it
        sh("t", "echo alive", ["alive"]),
    )
    result = run_scenario(steps, **QUIET)
    wrong, written, _, after = result.steps
    assert wrong.exit_status == 1 and wrong.matched is False
    assert wrong.output == 'Undefined command: "frobnicate".  Try "help".\n'
    problems = verdict.problems(steps, result, "6.1")
    assert len(problems) == 1 and problems[0].startswith("error:1: step 1 (dbg: 'frobnicate'")
    assert 'gdb said: Undefined command: "frobnicate"' in problems[0]
    # An error the post writes down is what it expects; a new gdb attached for it.
    assert written.exit_status == 1 and written.matched is True, written
    assert after.matched is True, after
    no_gdb_left()


def test_a_guest_step_behind_a_stopped_guest_ends_the_run_at_once(guest: Guest) -> None:
    steps = scenario(
        "stopped",
        gdb("info registers rip", ["rip ..."]),  # attached: the guest is stopped
        sh("t", "echo never"),
    )
    started = time.monotonic()
    result = run_scenario(steps, **QUIET)
    assert time.monotonic() - started < 30
    assert result.steps[0].matched is True
    assert result.steps[1].status == Status.NOT_RUN
    assert result.error.startswith("stopped:2: the guest is stopped in gdb (session 'dbg')")
    no_gdb_left()


def test_a_killed_gdb_leaves_no_guest_stopped(guest: Guest) -> None:
    artifacts, accel = guest
    with VM(artifacts, accel) as vm:
        assert vm.agent is not None
        sock, qmp = vm.rundir / GDB_SOCKET, vm.rundir / "qmp.sock"
        dbg = Debugger(debugger.argv(None), str(sock), qmp, vm.rundir)
        try:
            dbg.start(time.monotonic() + 10)
            assert dbg.attached and not dbg.running  # attaching stops the guest
            assert dbg.proc is not None
            os.kill(dbg.proc.pid, signal.SIGKILL)
            dbg.proc.wait(timeout=10)
            forced = dbg.release()
        finally:
            with contextlib.suppress(Exception):
                dbg.kill()
        assert forced == "gdb ended: the guest was resumed through QEMU's monitor"
        assert vm.agent.hello()  # the guest runs again
    no_gdb_left()


def test_the_docs_interleaving_on_a_real_guest(guest: Guest) -> None:
    """Breakpoint, a guest command that stops in it, bt, detach, the command's output."""
    steps: Scenario = scenario(
        "interleave",
        address_of("__x64_sys_newuname"),
        gdb("hbreak *0x@addr@", ["Hardware assisted breakpoint 1 at 0x..."]),
        gdb("continue", ["Continuing."], output="later"),
        sh("t", "uname -r", [], output="later"),
        gdb("continue", ["", "Breakpoint 1, 0x... in ?? ()"], output="collect", timeout=30),
        gdb("detach", ["...", "[Inferior 1 (process 1) detached]"]),
        sh("t", "uname -r", ["...-amd64"], output="collect"),
    )
    result = run_scenario(steps, **QUIET)
    assert verdict.problems(steps, result, "6.1") == [], result
    assert [r.status for r in result.steps][2:4] == [Status.STARTED, Status.STARTED]
    no_gdb_left()


def test_gdb_runs_in_the_build_sandbox_where_the_run_has_one(guest: Guest) -> None:
    """At the reader's paths, reaching the stub through the socket bound into it."""
    steps = scenario(
        "sandboxed",
        build("true"),
        gdb("pwd", ["Working directory /home/user."]),
        gdb("info registers rip", ["rip ..."]),
        gdb("detach", ["..."]),
        sh("t", "echo alive", ["alive"]),
    )
    result = run_scenario(steps, kmod_dir=TEST_KMOD, **QUIET)
    assert verdict.problems(steps, result, "6.1") == [], result
    no_gdb_left()

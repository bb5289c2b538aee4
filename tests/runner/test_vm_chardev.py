"""Episode 2's character devices in a real guest, as a reader would see them.

One scenario (one VM) runs everything; the tests below each check one thing a
reader would notice. The host is compared before and after: the modules are
loaded in the guest only.
"""

from __future__ import annotations

import re

import pytest
from vmhelp import Guest, build, host_modules, py, scenario, sh

from runner.config import KMOD
from runner.execute import run_scenario
from runner.judge import verdict
from runner.scenario import ScenarioResult, StepResult

pytestmark = pytest.mark.vm

STEPS = [
    build("make -C chardev"),
    sh("t", "cd chardev"),
    sh("t", "sudo insmod chardev.ko"),
    sh("t", "sudo dmesg | tail -n 1", ["...mknod /dev/chardev c @major@ 0..."]),
    sh("t", "sudo mknod /dev/chardev c @major@ 0"),
    sh("t", "cat /dev/chardev", ["I already told you 0 times Hello world!"]),  # 5
    sh("t", "cat /dev/chardev", ["I already told you 1 times Hello world!"]),
    py("py", 'f = open("/dev/chardev")'),
    sh("t", "cat /dev/chardev", ["cat: /dev/chardev: Device or resource busy"]),
    sh("t", "sudo rmmod chardev", ["rmmod: ERROR: Module chardev is in use"]),
    sh("t", "grep -c '^chardev ' /proc/modules", ["1"]),  # 10
    py("py", "f.read()", ["'I already told you 2 times Hello world!\\n'"]),
    py("py", "f.close()"),
    sh("t", "sudo rmmod chardev"),
    sh("t", "grep -c '^chardev ' /proc/modules", ["0"]),
    sh("t", "sudo insmod chardev_noref.ko"),  # 15
    sh("t", "sudo dmesg | tail -n 1", ["...mknod /dev/chardev c @major2@ 0..."]),
    sh("t", "sudo rm /dev/chardev && sudo mknod /dev/chardev c @major2@ 0"),
    py("py", 'f = open("/dev/chardev")'),
    py("py", "import os; os.getpid()", ["@pypid@"]),
    sh("t", "sudo rmmod chardev_noref"),  # 20
    py(
        "py",
        "f.read()",
        expect_hang=True,
        timeout=3,
        kernel_events={"*": ["page-fault", "Oops", "recursive-fault"]},
    ),
    sh("t", "ps -o stat= -p @pypid@"),
    sh("t", "grep State /proc/@pypid@/status"),
]
HANG = 21

Run = tuple[ScenarioResult, dict[str, object], dict[str, object]]  # result, host before, after
CHARDEV = scenario("chardev", *STEPS)


@pytest.fixture(scope="module")
def run(guest: Guest) -> Run:
    before = host_modules()
    result = run_scenario(CHARDEV, kmod_dir=KMOD, log=lambda msg: None)
    after = host_modules()
    return result, before, after


@pytest.fixture(scope="module")
def result(run: Run) -> ScenarioResult:
    return run[0]


def step(result: ScenarioResult, index: int) -> StepResult:
    res = result.steps[index]
    assert res.input.split("\n")[0].startswith(STEPS[index].input.split("@")[0]), res.input
    return res


def test_every_step_ran_as_expected(result: ScenarioResult) -> None:
    assert result.error == ""
    assert verdict.problems(CHARDEV, result, "6.1") == []
    assert [s.status for s in result.steps].count("hang") == 1


def test_build_made_both_modules(result: ScenarioResult) -> None:
    res = step(result, 0)
    assert res.where == "build"
    assert res.exit_status == 0
    assert "chardev.ko" in res.output and "chardev_noref.ko" in res.output


def test_counter_counts_opens(result: ScenarioResult) -> None:
    assert step(result, 5).output == "I already told you 0 times Hello world!\n"
    assert step(result, 6).output == "I already told you 1 times Hello world!\n"


def test_major_captured_and_typed(result: ScenarioResult) -> None:
    major = step(result, 3).captures["major"]
    assert major.isdigit()
    assert step(result, 4).input == f"sudo mknod /dev/chardev c {major} 0"
    assert step(result, 4).exit_status == 0


def test_second_open_is_busy(result: ScenarioResult) -> None:
    res = step(result, 8)
    assert res.output == "cat: /dev/chardev: Device or resource busy\n"
    assert res.exit_status == 1


def test_rmmod_refused_while_open_then_accepted(result: ScenarioResult) -> None:
    refused = step(result, 9)
    assert "in use" in refused.output
    assert refused.exit_status != 0
    assert step(result, 10).output.strip() == "1"  # still loaded
    assert step(result, 11).output == "'I already told you 2 times Hello world!\\n'\n"
    accepted = step(result, 13)
    assert (accepted.output, accepted.exit_status) == ("", 0)
    assert step(result, 14).output.strip() == "0"


def test_noref_unloads_while_open(result: ScenarioResult) -> None:
    res = step(result, 20)
    assert (res.output, res.exit_status) == ("", 0)
    assert res.events == []


def test_read_after_unload_hangs_with_an_oops(result: ScenarioResult) -> None:
    res = step(result, HANG)
    assert res.status == "hang"
    assert res.exit_status is None
    # Proven, not waited for: the task died in the kernel well before the 3 s timeout.
    assert res.duration < 2.5
    assert re.fullmatch(
        r"task \d+ \(python3\) is in state X \(dead\) after \d+\.\d s", res.hang_proof
    )
    assert any("BUG: unable to handle page fault" in line for line in res.kernel_log)
    kinds = [e.kind for e in res.events]
    assert kinds == ["page-fault", "Oops", "page-fault", "Oops", "recursive-fault"], kinds
    assert any("Oops" in e.line for e in res.events)


def test_ps_agrees_with_proc_status(result: ScenarioResult) -> None:
    ps, status = step(result, 22), step(result, 23)
    assert ps.status == status.status == "ok"
    # "State:\tX (dead)": the letter after the tab is the kernel's own answer.
    assert status.output.startswith("State:\t"), status.output
    letter = status.output.split()[1]
    shown = ps.output.strip()
    assert shown, "ps shows no state for the task"
    assert shown[0] == letter, (shown, status.output)


def test_host_is_untouched(run: Run) -> None:
    _, before, after = run
    assert after == before
    sysmod = after["sys_module"]
    assert sysmod is None or not {"chardev", "chardev_noref"} & set(sysmod)  # type: ignore[arg-type]

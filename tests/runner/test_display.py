"""runner.display: a run shown in a log and on a terminal, reproduce's step lines,
and the rule that the runner in the container needs no rich."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from vmhelp import ROOT

from runner.display import Display, clock_time
from runner.scenario import Provenance, Scenario, ScenarioResult, Status, Step, StepResult

ESCAPE = "\x1b"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _log_display(clock: Clock) -> tuple[Display, io.StringIO]:
    out = io.StringIO()
    return Display(Console(file=out, force_terminal=False, width=60), clock=clock), out


def _result(index: int, step: Step, status: Status = Status.OK, **kw: object) -> StepResult:
    return StepResult(index, status, "$ ", step.input, "", 0, 1.0, step.where, **kw)  # type: ignore[arg-type]


# --- the display -------------------------------------------------------------------------


def test_clock_time() -> None:
    assert [clock_time(s) for s in (0, 42.9, 725, 3723)] == ["0:00", "0:42", "12:05", "1:02:03"]


def test_in_a_log_finished_steps_and_a_line_every_15_s_of_a_long_step() -> None:
    clock = Clock()
    shown, out = _log_display(clock)
    make = Step("build", "console", "make -j2 bzImage\necho done", where="build")
    quick = Step("t", "console", "insmod hang.ko")
    with shown.scenario(steps=True) as view:
        view.progress(0, 2, make, None)
        for second in range(1, 46):
            clock.now += 1
            view.activity(0, second, f"\x1b[32m  CC  kernel/obj{second}.o\x1b[0m\r\n")
        view.activity(1, 50.0, "late news of another step: not shown")
        view.progress(0, 2, make, _result(0, make))
        view.progress(1, 2, quick, None)
        clock.now += 2
        proof = "task 212 (insmod) is in state D (uninterruptible sleep) after 1.9 s"
        view.progress(1, 2, quick, _result(1, quick, Status.HANG, hang_proof=proof))
    shown.print("a [bold]message[/bold] :smile: kept as it is, however long it is")
    text = out.getvalue()
    assert ESCAPE not in text
    assert text.splitlines() == [
        "[0:15] step 1/2 build: make -j2 bzImage | CC  kernel/obj15.o",
        "[0:30] step 1/2 build: make -j2 bzImage | CC  kernel/obj30.o",
        "[0:45] step 1/2 build: make -j2 bzImage | CC  kernel/obj45.o",
        "step 1/2   45.0s    build: make -j2 bzImage  ok",
        f"step 2/2   47.0s        t: insmod hang.ko  ok ({proof}, as expected)",
        "a [bold]message[/bold] :smile: kept as it is, however long it is",
    ]


def test_in_a_log_a_failed_step_and_a_labelled_run() -> None:
    clock = Clock()
    shown, out = _log_display(clock)
    step = Step("t", "console", "cat /proc/nothing")
    with shown.scenario("ep9 [6.1]", steps=True) as view:
        view.progress(0, 1, step, None)
        view.progress(0, 1, step, _result(0, step, matched=False))
    assert out.getvalue() == "ep9 [6.1] step 1/1    0.0s        t: cat /proc/nothing  FAILED\n"


def test_a_kernel_build_task_restarts_its_clock_with_each_command() -> None:
    clock = Clock()
    shown, out = _log_display(clock)
    with shown.task("kernel build") as progress:
        for second in range(1, 17):
            clock.now += 1
            progress(second, "HOSTCC scripts/basic/fixdep")
        for second in range(1, 17):  # the next command: 15 s before its first line
            clock.now += 1
            progress(second, "" if second < 3 else "CC init/main.o")
    assert out.getvalue().splitlines() == [
        "[0:15] kernel build | HOSTCC scripts/basic/fixdep",
        "[0:15] kernel build | CC init/main.o",
    ]


def test_on_a_terminal_a_row_per_run_with_its_bar_and_latest_line() -> None:
    clock = Clock()
    out = io.StringIO()
    shown = Display(Console(file=out, force_terminal=True, width=100), clock=clock)
    assert shown.live
    make = Step("build", "console", "make -j2 bzImage", where="build")
    with shown.scenario("ep3 [6.1]") as first, shown.scenario("ep3 [6.12]") as second:
        first.progress(3, 9, make, None)
        second.progress(0, 9, make, None)
        clock.now += 130
        first.activity(3, 130, "  CC      kernel/fork.o\r\n")
        frame = io.StringIO()
        Console(file=frame, width=100, force_terminal=False).print(shown)
    rows = [line.rstrip() for line in frame.getvalue().splitlines()]
    assert len(rows) == 3, rows
    assert rows[0].endswith("2:10 ep3 [6.1] step 4/9 build: make -j2 bzImage")
    assert rows[1].strip() == "CC      kernel/fork.o"
    assert rows[2].endswith("2:10 ep3 [6.12] step 1/9 build: make -j2 bzImage")
    assert "━" in rows[0]  # rich's bar
    # The live rows were drawn, then cleared when the last run ended.
    assert ESCAPE in out.getvalue() and shown.live


# --- reproduce ---------------------------------------------------------------------------


def test_reproduce_shows_each_step_in_a_log(tmp_path: Path) -> None:
    from runner import reproduce

    steps = [
        Step("build", "console", "make -C hello", where="build"),
        Step("t", "console", "sudo insmod hello.ko", expected=["hi"]),
    ]
    plan = Scenario("ep0", steps)

    def run(scen: Scenario, label: str, **kwargs: object) -> ScenarioResult:
        progress, activity = kwargs["progress"], kwargs["activity"]
        results = []
        for index, step in enumerate(scen.steps):
            progress(index, len(steps), step, None)  # type: ignore[operator]
            activity(index, 16.0, "CC [M]  hello.o")  # type: ignore[operator]
            results.append(_result(index, step, matched=index == 0))
            progress(index, len(steps), step, results[-1])  # type: ignore[operator]
        prov = Provenance("6.1.0", "6.1.0-1", "tcg", "test", "8.2", "now", 0.1, 0.2)
        return ScenarioResult(scen.name, prov, results)

    out = io.StringIO()
    reproduce.reproduce(plan, {}, tmp_path, "6.1", out=out, run=run)
    text = out.getvalue()
    assert ESCAPE not in text and "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "reproducing ep0 (2 steps) on Linux 6.1"
    assert re.fullmatch(r"step 1/2 +\d+\.\ds +build: make -C hello  ok", lines[1]), lines
    assert re.fullmatch(r"step 2/2 +\d+\.\ds +t: sudo insmod hello.ko  FAILED", lines[2]), lines
    assert len(lines) == 3  # activity of quick steps: no line in a log


# --- where rich runs ---------------------------------------------------------------------


def test_the_runner_in_the_container_needs_no_rich() -> None:
    """The image has Debian's python3 and no rich: its `python3 -m runner - --json
    --events` must not import it (nor the display that does)."""
    probe = (
        "import sys; sys.modules['rich'] = None\n"
        "import runner.__main__, runner.execute\n"
        "from runner.__main__ import main\n"
        "sys.argv = ['runner', '-', '--json', '--events']\n"
        "sys.stdin = __import__('io').StringIO('{}')\n"
        "raise SystemExit(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2, done.stderr  # a malformed scenario, reported as an event
    assert '"event": "error"' in done.stderr and "ModuleNotFoundError" not in done.stderr

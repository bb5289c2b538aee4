"""Untrusted output: a step that prints without end fails fast, naming its file:line,
and the host's memory stays bounded (terminal.OUTPUT_LIMIT, execute.INTERRUPT_GRACE)."""

from __future__ import annotations

import contextlib
import gc
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmhelp import TEST_KMOD, Guest, build, py, scenario, sh

from runner import execute, terminal
from runner.execute import run_scenario
from runner.judge import verdict
from runner.scenario import Scenario, ScenarioResult, Status

pytestmark = pytest.mark.vm

QUIET = {"log": lambda msg: None}
# What a run may add to the host's peak memory: the terminal's limit, its copies as the
# output is cleaned and split, and the runner's own bookkeeping.
RSS_BOUND = 64 << 20


def _status_kib(key: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1])


def measured(scn: Scenario) -> tuple[ScenarioResult, float, int]:
    """The run, its seconds, and how far it raised this process's peak RSS (bytes)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    started = time.monotonic()
    result = run_scenario(scn, kmod_dir=TEST_KMOD, **QUIET)
    return result, time.monotonic() - started, (_status_kib("VmHWM") - before) << 10


def assert_flood(scn: Scenario, result: ScenarioResult, index: int, start: str) -> None:
    """Step `index` failed for its output, kept short, with a message naming its line."""
    step, res = scn.steps[index], result.steps[index]
    assert res.status == Status.TOO_MUCH_OUTPUT, (res.status, res.output[-300:], result.error)
    assert res.output.startswith(start), res.output[:100]
    assert res.output.endswith(" bytes in all]\n")
    assert len(res.output) < execute.FLOOD_KEPT + 200
    assert res.exit_status is None
    printed = int(res.detail.split("printed ")[1].split(" bytes")[0].replace(",", ""))
    assert printed > terminal.OUTPUT_LIMIT, res.detail
    problems = verdict.problems(scn, result, "6.1")
    assert any(p.startswith(f"{step.source}: step {index + 1} ") for p in problems), problems
    assert any("more than 2 MiB, the most one step may print" in p for p in problems), problems


def test_yes_in_the_guest_fails_fast_and_the_session_goes_on(
    guest: Guest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execute, "INTERRUPT_GRACE", 3.0)
    scn = scenario(
        "flood",
        sh("t", "yes", timeout=40),
        sh("t", "echo alive", ["alive"]),
        # A program that ignores Ctrl-C: the guest is stopped and the run ends.
        sh("t", """bash -c "trap '' INT; yes deaf" """, timeout=40),
        sh("u", "echo not reached"),
    )
    result, seconds, grew = measured(scn)
    assert_flood(scn, result, 0, "y\ny\ny\n")
    assert "Ctrl-C stopped it" in result.steps[0].detail
    assert result.steps[0].duration < 20, result.steps[0].detail
    assert result.steps[1].matched is True, result.steps[1]
    assert_flood(scn, result, 2, "deaf\ndeaf\n")
    assert "Ctrl-C did not stop it: the guest will be stopped" in result.steps[2].detail
    assert result.error.startswith("flood:3: the step printed without end"), result.error
    assert result.steps[3].status == Status.NOT_RUN
    assert grew < RSS_BOUND, f"peak RSS grew by {grew >> 20} MiB"
    print(f"yes: {result.steps[0].detail}; deaf: {result.steps[2].detail}")
    print(f"yes: run {seconds:.1f} s; peak RSS +{grew >> 20} MiB")


def test_an_endless_line_and_a_python_loop(guest: Guest) -> None:
    scn = scenario(
        "line",
        sh("t", r"tr -d '\n' < /dev/zero | tr '\0' a", timeout=40),
        py("p", "while True: print('x' * 999)", timeout=40),
        sh("t", "echo alive", ["alive"]),
        py("p", "6 * 7", ["42"]),
    )
    result, seconds, grew = measured(scn)
    assert_flood(scn, result, 0, "a" * 1000)
    assert_flood(scn, result, 1, "x" * 999 + "\n")
    assert [s.matched for s in result.steps[2:]] == [True, True], result.steps[2:]
    assert result.error == ""
    assert grew < RSS_BOUND, f"peak RSS grew by {grew >> 20} MiB"
    print(f"line: {result.steps[0].detail}; python: {result.steps[1].detail}; run {seconds:.1f} s")


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _pids_named(comm: str) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == comm:
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def test_a_build_step_printing_without_end(guest: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    # Room for a loaded machine to drain the flood once Ctrl-C lands.
    monkeypatch.setattr(execute, "INTERRUPT_GRACE", 5.0)
    # The runner with SIGINT ignored, as a run a script started in the background
    # (`make test &`) inherits it: the build session's programs must get Ctrl-C as
    # a terminal's do all the same (an ignored signal stays ignored across exec).
    yes_before = _pids_named("yes")
    scn = scenario(
        "build",
        build("yes", timeout=40),
        build("echo alive", expected=["alive"]),
        # A program that ignores Ctrl-C is killed, with its session; the run ends.
        build("""bash -c "trap '' INT; yes deaf" """, timeout=40),
        build("echo not reached"),
    )
    with _sigint_ignored():
        result, seconds, grew = measured(scn)
    assert_flood(scn, result, 0, "y\ny\n")
    assert "Ctrl-C stopped it" in result.steps[0].detail
    assert result.steps[1].matched is True
    assert_flood(scn, result, 2, "deaf\ndeaf\n")
    assert "Ctrl-C did not stop it: its build session was killed" in result.steps[2].detail
    assert result.error.startswith("build:3: the step printed without end"), result.error
    assert result.steps[3].status == Status.NOT_RUN
    assert _pids_named("yes") <= yes_before, "a yes outlived its sandbox"
    assert grew < RSS_BOUND, f"peak RSS grew by {grew >> 20} MiB"
    print(f"build: {result.steps[0].detail}; {result.steps[2].detail}; run {seconds:.1f} s")

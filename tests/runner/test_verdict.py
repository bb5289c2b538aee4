"""The verdict: how a step's status, output and kernel events are judged. No VM."""

from __future__ import annotations

from runner.judge import verdict
from runner.scenario import (
    KernelEvent,
    Provenance,
    Scenario,
    ScenarioResult,
    Status,
    Step,
    StepResult,
)

# --- kernel events as expectations ------------------------------------------------


def _step(block: int, source: str, declared: dict[str, list[str]] | None) -> Step:
    return Step("t", "console", "cmd", source=source, block=block, kernel_events=declared)


# A console line of each kind, as a 6.1 guest prints it: the judge reads the events
# from the log itself.
HEADLINES = {
    "WARNING": "WARNING: CPU: 0 PID: 97 at kmod/warn.c:9 warn_init+0x10/0x20 [warn]",
    "page-fault": "BUG: unable to handle page fault for address: ffffffffc0a2b000",
    "Oops": "Oops: 0000 [#1] PREEMPT SMP NOPTI",
}


def _result(index: int, *kinds: str) -> StepResult:
    log = [f"[    1.0] {HEADLINES[kind]}" for kind in kinds]
    return StepResult(
        index=index, status="ok", prompt="$ ", input="cmd", output="", exit_status=0,
        duration=0.1, where="guest", kernel_log=log,
        events=[KernelEvent(kind, HEADLINES[kind]) for kind in kinds],
    )  # fmt: skip


def test_declared_events_that_happen_pass() -> None:
    declared = {"*": ["page-fault", "Oops"]}
    steps = [_step(0, "p.md:3", declared), _step(0, "p.md:4", declared)]
    results = [_result(0), _result(1, "page-fault", "Oops", "page-fault")]
    assert verdict.event_problems(steps, results, "6.1") == []


def test_an_undeclared_event_fails_at_its_step_with_its_lines() -> None:
    steps = [_step(0, "p.md:3", None), _step(1, "p.md:7", {"*": ["Oops"]})]
    results = [_result(0, "WARNING"), _result(1, "Oops")]
    (problem,) = verdict.event_problems(steps, results, "6.1")
    assert problem.startswith("p.md:3: step 1 (t: 'cmd', kernel 6.1): the kernel reported WARNING")
    assert (
        "does not declare" in problem and "    WARNING: CPU: 0 PID: 97 at kmod/warn.c:9" in problem
    )


def test_a_declared_event_that_does_not_happen_fails_at_its_block() -> None:
    steps = [_step(0, "p.md:3", {"*": ["Oops"], "6.12": ["WARNING"]})]
    (problem,) = verdict.event_problems(steps, [_result(0)], "6.12")
    assert problem.startswith("p.md:3: step 1")
    assert problem.endswith("did not happen in this block: WARNING")
    assert verdict.event_problems(steps, [_result(0, "WARNING")], "6.12") == []
    # On 6.1 the block expects an oops instead.
    assert (
        "did not happen in this block: Oops"
        in verdict.event_problems(steps, [_result(0)], "6.1")[0]
    )


def test_every_failing_status_is_explained() -> None:
    step = Step("t", "console", "sleep 9", timeout=2)
    for status in Status:
        text = verdict.explain(status, step, "the reason")
        assert (text and text != status.value) or status in (
            Status.OK,
            Status.HANG,
            Status.STARTED,
        )
    assert "within 2 s" in verdict.explain(Status.TIMEOUT, step, "")
    assert verdict.explain(Status.NOT_RUN, step, "the reason") == "not run: the reason"
    gdb = Step("dbg", "gdb", "continue", timeout=3)
    assert "gdb's guest did not stop" in verdict.explain(Status.TIMEOUT, gdb, "")
    later = Step("t", "console", "true", output="later")
    assert "output=later, but it ended at once" in verdict.explain(
        Status.UNEXPECTED_RETURN, later, ""
    )


def test_dots_accept_any_output_but_not_a_failure() -> None:
    assert verdict.judge_output(["..."], "anything\nat all", 0).ok
    failed = verdict.judge_output(["..."], "make: *** no rule", 2)
    assert not failed.ok and "exited with status 2" in failed.diff
    # Naming an output line makes the failure the point.
    assert verdict.judge_output(["make: ***..."], "make: *** no rule", 2).ok


def test_problems_in_post_order_then_events() -> None:
    steps = [
        Step("t", "console", "true", source="p.md:3", block=0),
        Step("t", "console", "echo x", expected=["y"], source="p.md:5", block=1),
        Step("t", "console", "sleep 9", timeout=2, source="p.md:7", block=2),
    ]
    scenario = Scenario("p", steps)
    results = [_result(0, "WARNING"), _result(1), _result(2)]
    results[1].matched, results[1].diff = False, "-y\n+x"
    results[2].status = Status.TIMEOUT
    prov = Provenance("6.1.0", "6.1.1", "tcg", "test", "9", "2026", 1.0, 2.0)
    found = verdict.problems(scenario, ScenarioResult("p", prov, results), "6.1")
    assert [p.split(":")[1] for p in found] == ["5", "7", "3"]
    assert "output differs" in found[0] and "within 2 s" in found[1] and "WARNING" in found[2]
    assert not verdict.passed(results[1]) and not verdict.passed(results[2])
    assert verdict.passed(results[0])  # its event is the verdict's business, not the status's


def test_a_lost_guest_is_said_once() -> None:
    """The run's error for a lost guest says what the step's own line says: once."""
    step = Step("t", "console", "sleep 30", source="p.md:13", block=0)
    lost = StepResult(0, Status.LOST, "$ ", "sleep 30", "", None, 2.0, "guest")
    prov = Provenance("6.1.0", "6.1.1", "tcg", "test", "9", "2026", 1.0, 2.0)
    error = f"p.md:13: {verdict.explain(Status.LOST, step, '')}"
    (problem,) = verdict.problems(
        Scenario("p", [step]), ScenarioResult("p", prov, [lost], error), "6.1"
    )
    assert problem.count("the guest was lost") == 1, problem
    # An error that says more than the step's line is kept.
    other = "p.md:13: the guest stopped answering: agent channel closed"
    (problem,) = verdict.problems(
        Scenario("p", [step]), ScenarioResult("p", prov, [lost], other), "6.1"
    )
    assert "agent channel closed" in problem

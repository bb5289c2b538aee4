"""Whether a run did what its post says: the one place that judges steps.

A step passes when its status is ok (or hang, where the post says it never
returns), its output matches what the author wrote, and the kernel events of
its block are the ones the block declares. Everything that reports a run (the
site build, `invoke verify`, `invoke run`, the runner's CLI, reproduce) asks
`problems()`; the messages come from here and nowhere else.
"""

from __future__ import annotations

from runner.judge import expect, kernel_log
from runner.scenario import FAILED_STATUSES, Scenario, ScenarioResult, Status, Step, StepResult

# "..." accepts any output, not any outcome: a command the post expects to fail
# must show what it prints when it does.
SILENT_FAILURE = (
    "exited with status {status}, and the post names none of its output lines; "
    "if the failure is the point, write what it prints"
)


def explain(status: Status, step: Step, output: str) -> str:
    """Why a step with a failing status failed, for the author."""
    return {
        Status.TIMEOUT: f"no prompt came back within {step.timeout:g} s "
        "(mark the block expect=hang if that is the point)",
        Status.UNEXPECTED_RETURN: "the post says this never returns (expect=hang), but it did",
        Status.INCOMPLETE_INPUT: "the input does not fit: the program finished the statement "
        "before its last line, or still waited for more after it",
        Status.PANIC: "the kernel panicked",
        Status.LOST: "the guest was lost (QEMU exited or the session died)",
        Status.NOT_RUN: f"not run: {output}",
    }.get(status, str(status))


def judge_output(wanted: list[str], output: str, exit_status: int | None) -> expect.Match:
    """Match a step's output against the lines the post expects on this kernel."""
    match = expect.match(wanted, output.splitlines())
    if match.ok and exit_status and expect.says_nothing(wanted):
        return expect.Match(False, match.captures, SILENT_FAILURE.format(status=exit_status))
    return match


def where(step: Step, result: StepResult, kernel: str) -> str:
    """file:line, step number, session, first input line and kernel: how errors begin."""
    first_line = step.input.split("\n")[0]
    return (
        f"{step.source}: step {result.index + 1} ({step.session}: {first_line!r}, kernel {kernel})"
    )


def step_problem(step: Step, result: StepResult, kernel: str, error: str = "") -> str:
    """Why this step failed, or "" when it did what the post says (kernel events aside)."""
    detail = f"\n{result.detail}" if result.detail else ""
    if result.status in FAILED_STATUSES:
        why = explain(result.status, step, result.output)
        more = f"\n{error}" if error and result.status != Status.NOT_RUN else ""
        return f"{where(step, result, kernel)}: {why}{more}{detail}"
    if result.matched is False:
        return (
            f"{where(step, result, kernel)}: the output differs from the post:\n{result.diff}"
            + detail
        )
    return ""


def problems(scenario: Scenario, result: ScenarioResult, kernel: str) -> list[str]:
    """Everything that keeps this run from being what the post says, in post order."""
    found = [
        problem
        for step, res in zip(scenario.steps, result.steps, strict=True)
        if (problem := step_problem(step, res, kernel, result.error))
    ]
    return found + event_problems(scenario.steps, result.steps, kernel)


def passed(result: StepResult) -> bool:
    """A quick look for progress displays: the status and the output, not the events."""
    return result.status not in FAILED_STATUSES and result.matched is not False


def event_problems(steps: list[Step], results: list[StepResult], kernel: str) -> list[str]:
    """Where the kernel's log disagrees with what the post declares, block by block.

    An event no block declared fails at the step whose log shows it, with its first
    lines; a declared kind that no step of its block caused fails at the block.
    """
    problems: list[str] = []
    blocks: dict[int, list[tuple[Step, StepResult]]] = {}
    for step, result in zip(steps, results, strict=True):
        blocks.setdefault(step.block, []).append((step, result))
    for pairs in blocks.values():
        declared = expect.events_for_kernel(pairs[0][0].kernel_events, kernel)
        seen: set[str] = set()
        for step, result in pairs:
            seen.update(event.kind for event in result.events)
            undeclared = [event for event in result.events if event.kind not in declared]
            if undeclared:  # the first says enough; the page shows the whole log
                event = undeclared[0]
                problems.append(
                    f"{where(step, result, kernel)}: the kernel reported {event.kind} "
                    f"({kernel_log.severity(event.kind).value}), which the post does not "
                    f'declare (kernel-events="..." on its block):\n'
                    + _event_lines(result.kernel_log, event.line)
                )
        missing = [kind for kind in declared if kind not in seen]
        if missing and not any(r.status in FAILED_STATUSES for _, r in pairs):
            step, result = pairs[0]
            problems.append(
                f"{where(step, result, kernel)}: the post declares kernel events that did "
                f"not happen in this block: {', '.join(missing)}"
            )
    return problems


def _event_lines(log: list[str], headline: str, count: int = 4) -> str:
    """The event's headline and the lines after it, as the console showed them."""
    for n, line in enumerate(log):
        if headline in line:
            return "\n".join("    " + kernel_log.message(x) for x in log[n : n + count])
    return "    " + headline

"""The judge: the one place that says whether a capture is what its post says.

Everything that reports a run or shows a capture asks here: the site build (for
fresh runs and frozen captures alike), `invoke verify`, `invoke run`, the runner's
CLI and a reader's reproduce. It decides

- whether a capture may be reused, must be re-made or is refused (`decide`);
- whether each step did what the post says (`problems`): its status, its output
  against the author's lines, the kernel events of its block against the declared
  ones. The events and the output match are derived again from the raw capture on
  every call, so a stricter rule, or a capture edited by hand, reaches frozen
  captures too, without a VM (the kernel-log table is part of a capture's key:
  a run depends on it);
- whether two captures are the same once volatile values are blanked (`compare`):
  one rule for drift from the published capture and for "differs across kernels";
- what a post's build came to on one kernel (`Outcome`).
"""

from __future__ import annotations

import difflib
import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from runner import terminal
from runner.judge import expect, kernel_log
from runner.judge.normalize import KBUILD_PROGRESS, KEPT_OR_FRESH, normalize_lines, rename
from runner.scenario import (
    FAILED_STATUSES,
    KernelEvent,
    Scenario,
    ScenarioResult,
    Status,
    Step,
    StepResult,
)


class Outcome(enum.StrEnum):
    """What a post's build came to on one kernel, as `invoke verify` reports it."""

    FRESH = "fresh"  # reused, or re-run and the same as published
    CAPTURED = "captured"  # made now: no capture, or a stale one
    DRIFTED = "drifted"  # re-run although fresh, and different from the published one
    FAILED = "failed"  # the capture is not what the post says
    STALE = "stale"  # stale and not run (mode never)
    NOT_RUN = "not run"  # a share of a verification never reached it


def fails(outcome: Outcome, *, drift_fails: bool = True) -> bool:
    """The one pass rule: whether a check with this outcome fails. Drift fails unless
    the new capture is the point (verify --update) or news (a run on a newer ABI)."""
    failing = {Outcome.FAILED, Outcome.STALE, Outcome.NOT_RUN}
    return outcome in failing or (drift_fails and outcome is Outcome.DRIFTED)


# --- freshness ------------------------------------------------------------------

MODES = ("auto", "never", "always")


class Action(enum.Enum):
    REUSE = "reuse"  # the frozen capture is what the page shows
    RUN = "run"  # run the post in the sandbox
    REFUSE = "refuse"  # stale, and no VM may run: the build fails


@dataclass(frozen=True)
class Decision:
    action: Action
    fresh: bool  # whether the frozen entry's key matches the inputs now
    why: str = ""  # for a stale capture: what changed


def check_mode(mode: str) -> None:
    """Refuse a mode that is not one of MODES, naming the setting."""
    if mode not in MODES:
        raise ValueError(f"KBLOG_EXECUTE={mode!r}: expected one of {', '.join(MODES)}")


def decide(mode: str, key: str | None, inputs: dict[str, str], old: dict[str, str]) -> Decision:
    """What to do for one post and kernel: `key` is its frozen capture's (None when
    there is none), `inputs` what the key is made of now, `old` what it was made of."""
    from runner import freeze

    check_mode(mode)
    fresh = key is not None and key == freeze.key_of(inputs)
    if fresh and mode != "always":
        return Decision(Action.REUSE, fresh)
    if fresh:
        return Decision(Action.RUN, fresh)  # re-run although fresh: nothing changed
    why = "no capture yet" if key is None else changed(old, inputs)
    if mode == "never":
        return Decision(Action.REFUSE, fresh, why)
    return Decision(Action.RUN, fresh, why)


def changed(old: dict[str, str], new: dict[str, str]) -> str:
    """Which key inputs differ, for the author: "changed: scenario, runner"."""
    names = [k for k in new if old.get(k) != new[k]]
    return "changed: " + ", ".join(names) if names else "unknown inputs"


def after_run(
    decision: Decision,
    published: ScenarioResult | None,
    old_inputs: dict[str, str],
    now: ScenarioResult,
    inputs: dict[str, str],
    written: Templates = (),
) -> tuple[Outcome, str]:
    """(the outcome, its detail) once a run passed. A fresh capture that was re-run is
    compared with the published one, and so is a run on another ABI of the same series
    (verify --newest): it would be fresh but for the kernel release, whose name and
    Debian version are then set aside. `written`: templates() of the post, for this
    kernel."""
    if published is None:
        return Outcome.CAPTURED, ""
    differing = {k for k, v in inputs.items() if old_inputs.get(k) != v}
    if not (decision.fresh or differing == {"kernel"}):
        return Outcome.CAPTURED, ""
    renames = kernel_renames(published, now)
    detail = compare(published.steps, now.steps, renames, written)
    return (Outcome.DRIFTED if detail else Outcome.FRESH), detail


# --- the same capture? ------------------------------------------------------------


def kernel_renames(published: ScenarioResult, now: ScenarioResult) -> dict[str, str]:
    """What a run on another kernel ABI (or linux-source version) calls the published
    capture's kernel release and Debian version, and the release of the kernel it
    built: those differ by design, not as drift."""
    was, new = vars(published.provenance), vars(now.provenance)
    renames = {
        str(was[name]): str(new[name])
        for name in ("kernel", "kernel_package")
        if was.get(name) and new.get(name) and was[name] != new[name]
    }
    for name in ("release", "source_version"):
        old, moved = published.provenance.built.get(name), now.provenance.built.get(name)
        if old and moved and old != moved:
            renames[old] = moved
    return renames


# Per step (by index), the lines the post expects (None: no expectation).
Templates = Sequence[list[str] | None]


def templates(steps: Sequence[Step], kernel: str) -> list[list[str] | None]:
    """What the post writes for each step's output on `kernel`, for comparisons."""
    return [None if s.expected is None else expect.for_kernel(s.expected, kernel) for s in steps]


def _view(result: StepResult, renames: Mapping[str, str], written: Templates) -> list[str]:
    """A step's output as comparisons see it. The parts the post writes as `...` or
    `@name@` read as written (expect.as_written): the author declared them varying.
    In build steps, kbuild's progress lines are left out (with kept objects they
    list what this run had to redo, which depends on the runs before it) and what a
    kept and a fresh build word differently reads as one (KEPT_OR_FRESH)."""
    lines = [rename(line, renames) for line in result.output.split("\n")]
    template = written[result.index] if result.index < len(written) else None
    if template is not None:
        # Matched as judge_output matches: without the newline that ends the output.
        end = len(lines)
        while end and not lines[end - 1].strip():
            end -= 1
        lines = expect.as_written(template, lines[:end]) + lines[end:]
    lines = normalize_lines(lines)
    if result.where == "build":
        lines = [KEPT_OR_FRESH.get(line, line) for line in lines if not KBUILD_PROGRESS.match(line)]
    return lines


@functools.lru_cache(maxsize=4096)
def events_of(log: tuple[str, ...]) -> list[KernelEvent]:
    """The events of a step's kernel log by today's table, read once per log."""
    return kernel_log.events(list(log))


@functools.lru_cache(maxsize=4096)
def kinds_of(log: tuple[str, ...]) -> list[str]:
    """The kinds of event a step's kernel log holds, by today's table (a page compares
    the same logs block by block and kernel by kernel: each is read once)."""
    return sorted({e.kind for e in events_of(log)})


def compare(
    published: list[StepResult],
    now: list[StepResult],
    renames: Mapping[str, str] | None = None,
    written: Templates = (),
    written_now: Templates | None = None,
) -> str:
    """How two captures differ once volatile values are blanked ("" when they do not):
    status, output and the kinds of kernel events, step by step. `renames` apply to the
    published output first (see kernel_renames); `written` is what the post expects
    of the published capture's steps (templates()), `written_now` of the new ones'
    when they ran on another kernel label."""
    lines: list[str] = []
    if len(published) != len(now):
        lines.append(f"{len(published)} steps published, {len(now)} now")
    for old, new in zip(published, now, strict=False):
        before = _view(old, renames or {}, written)
        after = _view(new, {}, written if written_now is None else written_now)
        old_kinds, new_kinds = kinds_of(tuple(old.kernel_log)), kinds_of(tuple(new.kernel_log))
        if before == after and old.status == new.status and old_kinds == new_kinds:
            continue
        lines.append(f"step {new.index + 1}: {new.prompt}{new.input}")
        if old.status != new.status:
            lines.append(f"  status: {old.status} published, {new.status} now")
        if old_kinds != new_kinds:
            shown = (", ".join(kinds) or "none" for kinds in (old_kinds, new_kinds))
            lines.append("  kernel events: {} published, {} now".format(*shown))
        lines += difflib.unified_diff(before, after, "published", "now", lineterm="", n=1)
    return "\n".join(lines)


def differs(
    per_kernel: Mapping[str, list[StepResult]], written: Mapping[str, Templates] | None = None
) -> bool:
    """Whether the kernels' captures of some steps differ (the same rule as drift);
    `written`: templates() by kernel label."""
    (first, steps), *others = per_kernel.items()
    by_label = written or {}
    return any(
        compare(steps, other, None, by_label.get(first, ()), by_label.get(label, ()))
        for label, other in others
    )


def differing_blocks(steps: list[Step], per_kernel: Mapping[str, list[StepResult]]) -> set[int]:
    """The blocks (Step.block) whose steps' captures differ across the kernels."""
    written = {label: templates(steps, label) for label in per_kernel}
    blocks: dict[int, list[int]] = {}
    for index, step in enumerate(steps):
        blocks.setdefault(step.block, []).append(index)
    return {
        block
        for block, indices in blocks.items()
        if differs({k: [results[i] for i in indices] for k, results in per_kernel.items()}, written)
    }


# --- did the steps do what the post says? ---------------------------------------------

# "..." accepts any output, not any outcome: a command the post expects to fail
# must show what it prints when it does.
SILENT_FAILURE = (
    "exited with status {status}, and the post names none of its output lines; "
    "if the failure is the point, write what it prints"
)


def explain(status: Status, step: Step, output: str) -> str:
    """Why a step with a failing status failed, for the author."""
    if status == Status.TIMEOUT and step.kind == "gdb":
        return f"gdb's guest did not stop, or gdb did not answer, within {step.timeout:g} s"
    if status == Status.UNEXPECTED_RETURN and step.output == "later":
        return (
            "output=later, but it ended at once: only what keeps running (a program the "
            "guest will stop in, gdb's `continue`) can be collected by a later block"
        )
    return {
        Status.TIMEOUT: f"no prompt came back within {step.timeout:g} s "
        "(mark the block expect=hang if that is the point)",
        Status.UNEXPECTED_RETURN: "the post says this never returns (expect=hang), but it did",
        Status.INCOMPLETE_INPUT: "the input does not fit: the program finished the statement "
        "before its last line, or still waited for more after it",
        Status.TOO_MUCH_OUTPUT: f"it printed more than {terminal.OUTPUT_LIMIT >> 20} MiB, the "
        "most one step may print (a program that prints without end?); it was interrupted, "
        "and only the start of its output is kept",
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


def judge_step(step: Step, result: StepResult, kernel: str) -> StepResult:
    """The step's result with its kernel events and output match derived afresh from
    what it printed and logged, by today's rules."""
    judged = replace(result, events=list(events_of(tuple(result.kernel_log))))
    if step.expected is None or result.status not in (Status.OK, Status.HANG, Status.STARTED):
        return replace(judged, matched=None, diff="", captures={})
    m = judge_output(expect.for_kernel(step.expected, kernel), result.output, result.exit_status)
    return replace(judged, matched=m.ok, diff=m.diff, captures=m.captures)


def rejudge(scenario: Scenario, result: ScenarioResult, kernel: str) -> ScenarioResult:
    """The capture as today's rules see it (a frozen one may predate them)."""
    steps = [judge_step(s, r, kernel) for s, r in zip(scenario.steps, result.steps, strict=False)]
    return replace(result, steps=steps)


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
        # The run's error, unless it only says again why this step failed.
        repeats = error.endswith(why) or result.status == Status.NOT_RUN
        more = f"\n{error}" if error and not repeats else ""
        return f"{where(step, result, kernel)}: {why}{more}{detail}"
    if result.matched is False:
        return (
            f"{where(step, result, kernel)}: the output differs from the post:\n{result.diff}"
            + detail
        )
    return ""


def problems(scenario: Scenario, result: ScenarioResult, kernel: str) -> list[str]:
    """Everything that keeps this capture from being what the post says, in post order,
    judged by today's rules (see rejudge)."""
    if len(result.steps) != len(scenario.steps):
        first = scenario.steps[0].source if scenario.steps else scenario.name
        return [
            f"{first}: the capture has {len(result.steps)} steps and the post "
            f"{len(scenario.steps)}: it is not a capture of this post"
        ]
    judged = rejudge(scenario, result, kernel)
    found = [
        problem
        for step, res in zip(scenario.steps, judged.steps, strict=True)
        if (problem := step_problem(step, res, kernel, result.error))
    ]
    return found + event_problems(scenario.steps, judged.steps, kernel)


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

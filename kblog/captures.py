"""The capture service: every post's results on every kernel, judged.

`capture()` takes the posts (read once, kblog.parse), the kernels and a mode, and
returns what each page shows and what each post x kernel came to. A capture in
snippets/ whose key still matches is reused; any other runs in the sandbox, the
stale ones in parallel (one VM per core). Every capture, frozen or new, is judged
by runner/judge/verdict.py before a page may show it.

Nothing is written here: new captures wait in `Captured.pending` until the caller
knows the whole build succeeded (`Captured.commit()`), so a failed build leaves
snippets/ as it was.

Posts that run show as they go, on stderr (runner/display.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import config, freeze, interrupt, memo
from runner.judge import verdict
from runner.judge.verdict import Action, Outcome
from runner.scenario import KernelEvent, Scenario, ScenarioResult, StepResult

from .parse import Post

if TYPE_CHECKING:
    from runner.display import Display

log = logging.getLogger(__name__)

Runner = Callable[[Scenario, str, Path], ScenarioResult]
Cell = tuple[str, str]  # (post name, kernel label)


def sandbox_runner(display: Display | None = None) -> Runner:
    """The default runner: the backend $KBLOG_BACKEND names (auto if unset), chosen
    once for the whole build; every run it makes is shown on `display` (one on
    stderr by default), parallel runs a row each."""
    # Imported here: a build whose captures are all fresh runs nothing, and these
    # (the backends, rich's live display) are a good part of its start-up.
    from runner import backends
    from runner.display import Display

    _, run = backends.select(backends.default_name(), lambda msg: log.info("%s", msg))
    shown = display if display is not None else Display()

    def run_post(scenario: Scenario, kernel: str, kmod: Path) -> ScenarioResult:
        def say(msg: str) -> None:
            log.info("%s: %s", scenario.name, msg)

        label = f"{scenario.name} [{kernel}]"
        shown.print(f"{label}: running {len(scenario.steps)} steps in the sandbox")
        with shown.scenario(label) as view:
            result = run(
                scenario,
                kernel,
                log=say,
                kmod_dir=kmod,
                kernel_dir=config.kernel_dir_for(kmod),
                progress=view.progress,
                activity=view.activity,
            )
        shown.print(f"{label}: ran in {result.provenance.total_seconds:.0f} s")
        return result

    return run_post


@dataclass(frozen=True)
class Request:
    """What to capture: where captures live, the kmod/ tree, the kernels and the mode
    (auto: run stale posts; never: fail on them; always: re-run all)."""

    snippets: Path
    kmod: Path = config.KMOD
    mode: str = "auto"
    kernels: tuple[str, ...] = (config.DEFAULT_KERNEL,)
    # The cells to run, for a share of a verification; None: every cell.
    cells: frozenset[Cell] | None = None
    workers: int = max(1, os.cpu_count() or 1)

    def __post_init__(self) -> None:
        verdict.check_mode(self.mode)  # at once, before any post is looked at

    def covers(self, name: str, kernel: str) -> bool:
        return self.cells is None or (name, kernel) in self.cells


@dataclass(frozen=True)
class CellOutcome:
    """What one post came to on one kernel (the verify table's row)."""

    post: str  # its source path
    kernel: str
    outcome: Outcome
    detail: str = ""


@dataclass
class PostCaptures:
    """What one post's page shows: its judged results per kernel and its captures
    file as this build publishes it; `error` (file:line: why) if it failed."""

    post: Post
    results: dict[str, ScenarioResult] = field(default_factory=dict)
    text: str = ""
    error: str = ""
    # The blocks (Step.block) whose captures differ across the kernels shown.
    differs: frozenset[int] = frozenset()


@dataclass
class Captured:
    """The service's answer for a set of posts."""

    posts: dict[str, PostCaptures]  # by source path
    outcomes: list[CellOutcome]
    pending: dict[Path, str]  # captures files to write once the build succeeded
    vm_runs: int
    kmod_digest: str

    @property
    def errors(self) -> list[str]:
        return [p.error for p in self.posts.values() if p.error]

    def commit(self) -> list[Path]:
        """Write the new captures; only ever after a build that fully succeeded."""
        if self.errors:
            raise RuntimeError("refusing to write captures after a failed build")
        written = sorted(self.pending)
        # All or none: a full disk half-way must not leave some posts' captures new.
        freeze.write_all_atomic({path: self.pending[path].encode() for path in written})
        self.pending.clear()
        return written


@dataclass(frozen=True)
class _Planned:
    """One post on one kernel: its stored capture, the inputs of its key now, and
    what to do (verdict.decide)."""

    entry: freeze.Entry | None
    inputs: dict[str, str]
    decision: verdict.Decision


# The judge's code: runner/judge/verdict.py and what it imports (a test checks it).
JUDGE_CODE = (
    "runner",
    "runner.config",
    "runner.freeze",
    "runner.judge",
    "runner.judge.expect",
    "runner.judge.kernel_log",
    "runner.judge.normalize",
    "runner.judge.verdict",
    "runner.kernels",
    "runner.kernels.debian",
    "runner.kernels.source",
    "runner.memo",
    "runner.scenario",
    "runner.sources",
    "runner.terminal",
)
# How a stored capture is judged, kept between builds (runner/memo.py): a warm build
# shows the same captures again. The key holds the captures file as read, the post's
# scenario (its file:line places too) and the kernel; a hand-edited capture, an edited
# post or a change to the judge's code is judged afresh.
JUDGED = memo.Memo("judged", "runner.judge.verdict", JUDGE_CODE)
# Which blocks of a post differ across kernels, under the captures file as published,
# the post's scenario and the kernels in their order.
DIFFERS = memo.Memo("differs", "runner.judge.verdict", JUDGE_CODE)


def judged(
    post: Post, result: ScenarioResult, kernel: str, stored: str = ""
) -> tuple[list[str], ScenarioResult]:
    """What keeps a capture from being what its post says (verdict.problems), and the
    capture as the judge reads it today (verdict.rejudge). `stored` is the text of the
    captures file `result` was read from ("" for a fresh run): such a capture is judged
    once per change of that text, of the post or of the judge. The memo keeps what
    judging derives (the problems, each step's events and match), not the capture:
    `result` is already read."""
    scenario = post.scenario
    at = JUDGED.key([stored, post.model, kernel]) if stored else ""
    found = JUDGED.get(at) if at else None
    if isinstance(found, dict):
        try:
            return [str(p) for p in found["problems"]], _judged_again(result, found["steps"])
        except (KeyError, TypeError, ValueError):
            pass  # an entry of another shape: judged again below
    problems = verdict.problems(scenario, result, kernel)
    read = verdict.rejudge(scenario, result, kernel)
    if at:
        JUDGED.put(at, {"problems": problems, "steps": [_derived(step) for step in read.steps]})
    return problems, read


def _derived(step: StepResult) -> dict[str, Any]:
    """What verdict.judge_step derives afresh for a stored step, as kept."""
    return {
        "events": [vars(e) for e in step.events],
        "matched": step.matched,
        "diff": step.diff,
        "captures": step.captures,
    }


def _judged_again(result: ScenarioResult, derived: list[dict[str, Any]]) -> ScenarioResult:
    """`result` with what a judge derived for its steps before (_derived); ValueError
    if that does not fit them."""
    if len(derived) != len(result.steps):
        raise ValueError("the kept verdict has another number of steps")
    steps = [
        replace(
            step,
            events=[KernelEvent(**e) for e in kept["events"]],
            matched=kept["matched"],
            diff=str(kept["diff"]),
            captures=dict(kept["captures"]),
        )
        for step, kept in zip(result.steps, derived, strict=True)
    ]
    return replace(result, steps=steps)


def differing_blocks(post: Post, results: dict[str, ScenarioResult], text: str) -> frozenset[int]:
    """The blocks whose captures differ across kernels (verdict.differing_blocks, by
    the drift rule), for captures published as `text`."""
    if len(results) < 2:
        return frozenset()
    at = DIFFERS.key([text, post.model, *results])
    found = DIFFERS.get(at)
    if isinstance(found, list) and all(isinstance(n, int) for n in found):
        return frozenset(found)
    per_kernel = {kernel: result.steps for kernel, result in results.items()}
    differs = frozenset(verdict.differing_blocks(post.scenario.steps, per_kernel))
    DIFFERS.put(at, sorted(differs))
    return differs


def capture(posts: Sequence[Post], request: Request, runner: Runner | None = None) -> Captured:
    """Each post's results on each of the request's kernels: reused, or run (stale ones
    in parallel), and judged. Never raises for a post: its error is in its entry."""
    shared = freeze.tree_inputs(request.kmod)
    kernels = [config.kernel(name) for name in request.kernels]
    plans: dict[str, dict[str, _Planned]] = {}
    stored: dict[str, dict[str, freeze.Entry]] = {}
    unreadable: dict[str, str] = {}
    texts: dict[str, str] = {}  # each captures file as read: republished as it is
    for post in posts:
        path = request.snippets / f"{post.name}.json"
        try:
            texts[post.source] = path.read_text() if path.exists() else ""
            stored[post.source] = (
                freeze.loads(texts[post.source], path) if texts[post.source] else {}
            )
        except freeze.CapturesFileError as exc:
            # A damaged file is never overwritten silently: re-made (saying so) where
            # posts may run, refused where they may not.
            stored[post.source] = {}
            unreadable[post.source] = str(exc)
            log.warning("%s; the post runs again and the file is made anew", exc)
        plans[post.source] = {
            kernel.name: _plan(post, kernel, stored[post.source], shared, request)
            for kernel in kernels
        }
    runner_ = runner
    jobs = [
        (post, name)
        for post in posts
        for name, planned in plans[post.source].items()
        if request.covers(post.name, name) and planned.decision.action is Action.RUN
    ]
    ran: dict[tuple[str, str], ScenarioResult | Exception] = {}
    if jobs:
        runner_ = runner_ or sandbox_runner()
        ran = _run_all(jobs, runner_, request)
    answer = Captured({}, [], {}, len(jobs), shared["kmod"])
    for post in posts:
        answer.posts[post.source] = _results(
            post,
            plans[post.source],
            stored[post.source],
            ran,
            request,
            answer,
            unreadable.get(post.source, ""),
            texts[post.source],
        )
    return answer


def _plan(
    post: Post,
    kernel: config.Kernel,
    stored: dict[str, freeze.Entry],
    shared: dict[str, str],
    request: Request,
) -> _Planned:
    inputs = freeze.key_inputs(post.scenario, kernel, shared, post.digest)
    entry = stored.get(kernel.name)
    key, old = (entry.key, entry.inputs) if entry is not None else (None, {})
    return _Planned(entry, inputs, verdict.decide(request.mode, key, inputs, old))


def _run_all(
    jobs: list[tuple[Post, str]], runner: Runner, request: Request
) -> dict[tuple[str, str], ScenarioResult | Exception]:
    """Run every job, several at once where there are cores for them; a run that
    raised keeps its exception, reported with its post."""
    out: dict[tuple[str, str], ScenarioResult | Exception] = {}
    if len(jobs) == 1:
        post, kernel = jobs[0]
        try:
            out[(post.source, kernel)] = runner(post.scenario, kernel, request.kmod)
        except Exception as exc:
            out[(post.source, kernel)] = exc
        return out
    from concurrent.futures import ThreadPoolExecutor  # only when posts run

    pool = ThreadPoolExecutor(max_workers=min(request.workers, len(jobs)))
    try:
        futures = {
            pool.submit(runner, post.scenario, kernel, request.kmod): (post.source, kernel)
            for post, kernel in jobs
        }
        for future, key in futures.items():
            try:
                out[key] = future.result()
            except Exception as exc:
                out[key] = exc
    except BaseException:
        # Ctrl-C: start nothing more, and stop the runs under way (their threads
        # never see the KeyboardInterrupt): they tear down before it goes on.
        with interrupt.stopping():
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return out


def _results(
    post: Post,
    plans: dict[str, _Planned],
    stored: dict[str, freeze.Entry],
    ran: dict[tuple[str, str], ScenarioResult | Exception],
    request: Request,
    answer: Captured,
    unreadable: str,
    text: str,
) -> PostCaptures:
    """One post's judged results, its outcomes, and its captures file if it changed."""
    source = post.source
    found = PostCaptures(post)
    table = dict(stored)

    def fail(kernel: str, outcome: Outcome, message: str) -> None:
        answer.outcomes.append(CellOutcome(source, kernel, outcome, message))
        found.error = found.error or message

    for name, planned in plans.items():
        entry, decision = planned.entry, planned.decision
        if not request.covers(post.name, name):
            if entry is not None:  # another share runs it: the page shows the capture
                found.results[name] = judged(post, entry.result, name, text)[1]
            continue
        if decision.action is Action.REFUSE:
            why = unreadable or decision.why
            fail(
                name,
                Outcome.STALE,
                f"{source}: the capture for kernel {name} is stale ({why}) "
                "and no VM may run (KBLOG_EXECUTE=never)",
            )
            continue
        read_from = ""  # the captures file's text, for a capture reused from it
        if decision.action is Action.REUSE:
            assert entry is not None
            result, read_from = entry.result, text
        else:
            got = ran[(source, name)]
            if isinstance(got, Exception):
                why = f"{source}: running the post on kernel {name} failed: {got}"
                fail(name, Outcome.FAILED, why)
                continue
            result = got
        problems, read = judged(post, result, name, read_from)
        if problems:
            reused = decision.action is Action.REUSE
            frozen = " (a frozen capture, judged by today's rules)" if reused else ""
            fail(name, Outcome.FAILED, problems[0] + frozen)
            continue
        if decision.action is Action.REUSE:
            answer.outcomes.append(CellOutcome(source, name, Outcome.FRESH))
        else:
            published = entry.result if entry is not None else None
            old_inputs = entry.inputs if entry is not None else {}
            written = verdict.templates(post.scenario.steps, name)
            outcome, detail = verdict.after_run(
                decision, published, old_inputs, result, planned.inputs, written
            )
            answer.outcomes.append(CellOutcome(source, name, outcome, detail))
            table[name] = freeze.make_entry(planned.inputs, result)
        found.results[name] = read
    if table == stored and not unreadable:
        found.text = text  # nothing new: the file as it is
    else:
        found.text = freeze.dumps(table, source)
        answer.pending[request.snippets / f"{post.name}.json"] = found.text
    if not found.error:
        found.differs = differing_blocks(post, found.results, found.text)
    return found

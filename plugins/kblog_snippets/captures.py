"""Where a post's results come from: its fresh freeze, or a run in the sandbox.

Nothing is written while a build runs: new captures wait in `pending` until the
whole build has succeeded, so a failed build leaves snippets/ as it was.

Posts that run show as they go, on stderr (runner/display.py): on a terminal a live
row per post with its step, time and latest output line; in a log (CI) a line when
a post starts and ends, and one every 15 s of a long step.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import backends, config, interrupt, verdict
from runner.display import Display
from runner.scenario import Scenario, ScenarioResult

from . import freeze, policy, render
from .parse import SnippetError

log = logging.getLogger(__name__)

Runner = Callable[[Scenario, str, Path], ScenarioResult]


def sandbox_runner(display: Display | None = None) -> Runner:
    """The default runner: the backend $KBLOG_BACKEND names (auto if unset), chosen
    once for the whole build; every run it makes is shown on `display` (one on
    stderr by default), parallel runs a row each."""
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


@dataclass
class Outcome:
    """What a post's build used for one kernel, for the verify table."""

    post: str
    kernel: str
    state: policy.State
    detail: str = ""


@dataclass(frozen=True)
class Planned:
    """One post on one kernel, decided once per build: its capture, the inputs its key
    is made of, and whether to reuse, run or refuse it (policy.decide)."""

    entry: dict[str, Any] | None
    inputs: dict[str, str]
    decision: policy.Decision


@dataclass
class Captures:
    snippets: Path
    kmod: Path = config.ROOT / "kmod"
    mode: str = "auto"  # auto: run stale posts; never: fail on them; always: re-run all
    kernels: tuple[str, ...] = (config.DEFAULT_KERNEL,)
    runner: Runner | None = None  # None: sandbox_runner(), chosen when first needed
    pending: dict[Path, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    vm_runs: int = 0
    workers: int = max(1, os.cpu_count() or 1)
    _prefetched: dict[tuple[str, str], ScenarioResult | Exception] = field(default_factory=dict)
    # Each post's scenario and its captures file as this build publishes it.
    published: dict[str, tuple[Scenario, str]] = field(default_factory=dict)
    # By post path: its scenario and results, or why it failed (prepare()).
    prepared: dict[str, tuple[Scenario, dict[str, ScenarioResult]] | SnippetError] = field(
        default_factory=dict
    )
    # (post name, kernel label) pairs to use, for a share of a verification; None: all.
    cells: frozenset[tuple[str, str]] | None = None
    # By scenario digest: its captures file as read, and each kernel's plan.
    _plans: dict[str, tuple[dict[str, Any], dict[str, Planned]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        policy.check_mode(self.mode)  # at once, before any post is looked at

    def __deepcopy__(self, memo: dict) -> Captures:
        return self  # Pelican copies its settings; there is one provider per build

    @functools.cached_property
    def _runner(self) -> Runner:
        return self.runner or sandbox_runner()

    @functools.cached_property
    def shared_inputs(self) -> dict[str, str]:
        """The key inputs every post shares, hashed once per build."""
        return freeze.tree_inputs(self.kmod)

    def kmod_digest(self) -> str:
        return self.shared_inputs["kmod"]

    def _in_share(self, scenario: Scenario, kernel: str) -> bool:
        return self.cells is None or (scenario.name, kernel) in self.cells

    def _plan(self, scenario: Scenario) -> tuple[dict[str, Any], dict[str, Planned]]:
        """The post's captures as read, and a plan per kernel of the build: made
        once, for the parallel runs ahead (prefetch) and for the post's results."""
        digest = scenario.digest()
        plan = self._plans.get(digest)
        if plan is None:
            frozen = freeze.load(self.snippets / f"{scenario.name}.json")
            decisions = {}
            for name in self.kernels:
                kernel = config.kernel(name)
                inputs = freeze.key_inputs(scenario, kernel, self.shared_inputs)
                entry = frozen.get(kernel.name)
                decisions[kernel.name] = Planned(
                    entry, inputs, policy.decide(self.mode, entry, inputs)
                )
            plan = self._plans[digest] = (frozen, decisions)
        return plan

    def _stale(self, scenario: Scenario) -> list[str]:
        """The kernels this scenario must run on (mode, freshness and share decide)."""
        return [
            kernel
            for kernel, decided in self._plan(scenario)[1].items()
            if self._in_share(scenario, kernel) and decided.decision.action is policy.Action.RUN
        ]

    def prefetch(self, scenarios: list[Scenario]) -> None:
        """Run the stale scenarios in parallel, one VM per core, before the build asks."""
        if self.mode == "never":
            return
        jobs = [(s, k) for s in scenarios for k in self._stale(s)]
        if len(jobs) < 2:
            return  # nothing to overlap: let the build run it in order
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(jobs)))
        try:
            run = self._runner
            futures = {pool.submit(run, s, k, self.kmod): (s.digest(), k) for s, k in jobs}
            for future, key in futures.items():
                try:
                    self._prefetched[key] = future.result()
                except Exception as exc:  # reported when the build reaches that post
                    self._prefetched[key] = exc
        except BaseException:
            # Ctrl-C: start nothing more, and stop the runs under way (their threads
            # never see the KeyboardInterrupt): they tear down before it goes on.
            with interrupt.stopping():
                pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()

    def prepare(self, posts: dict[str, Scenario]) -> None:
        """Make or find every post's results before any post is read: stale posts run
        in parallel; a post that fails keeps its error for when it is read."""
        self.prefetch(list(posts.values()))
        for source, scenario in posts.items():
            try:
                self.prepared[source] = (scenario, self.results(scenario, source))
            except SnippetError as exc:
                self.prepared[source] = exc

    def lookup(self, source: str, scenario: Scenario) -> dict[str, ScenarioResult]:
        """The results prepare() made for the post at `source` (its error, if it failed)."""
        found = self.prepared.get(source)
        if isinstance(found, SnippetError):
            raise found
        if found is None or found[0].digest() != scenario.digest():
            raise SnippetError(f"{source}: its snippets were not prepared before reading it")
        return found[1]

    def document(self, source: str) -> dict[str, Any] | None:
        """What the page shows beside the terminals: provenance, differences, bundle."""
        found = self.prepared.get(source)
        if found is None or isinstance(found, SnippetError):
            return None
        scenario, per_kernel = found
        if not per_kernel:  # a share of a verification that ran none of it, never captured
            return None
        provenances = [vars(r.provenance) for r in per_kernel.values()]
        steps = {k: r.steps for k, r in per_kernel.items()}
        return {
            "provenance": render.render_provenance(provenances, self.kmod_digest()),
            "differences": render.differences(scenario.steps, steps),
            "bundle": scenario.name,
        }

    def _run(self, scenario: Scenario, kernel: str) -> ScenarioResult:
        found = self._prefetched.pop((scenario.digest(), kernel), None)
        if found is None:
            return self._runner(scenario, kernel, self.kmod)
        if isinstance(found, Exception):
            raise found
        return found

    def results(self, scenario: Scenario, post: str) -> dict[str, ScenarioResult]:
        """The result per kernel for `scenario`; raises SnippetError on any failure."""
        path = self.snippets / f"{scenario.name}.json"
        frozen, decisions = self._plan(scenario)
        table = dict(frozen)
        out: dict[str, ScenarioResult] = {}
        for name, decided in decisions.items():
            entry, inputs, decision = decided.entry, decided.inputs, decided.decision
            if not self._in_share(scenario, name):
                if entry is not None:  # another share runs it: the page shows the capture
                    out[name] = freeze.entry_result(entry)
                continue
            if decision.action is policy.Action.REUSE:
                assert entry is not None
                out[name] = freeze.entry_result(entry)
                self.outcomes.append(Outcome(post, name, policy.State.FRESH))
                continue
            if decision.action is policy.Action.REFUSE:
                message = (
                    f"{post}: the capture for kernel {name} is stale ({decision.why}) "
                    "and no VM may run (KBLOG_EXECUTE=never)"
                )
                self.outcomes.append(Outcome(post, name, policy.State.STALE, message))
                self._fail(message)
            self.vm_runs += 1
            try:
                try:
                    result = self._run(scenario, name)
                except Exception as exc:
                    self._fail(f"{post}: running the post on kernel {name} failed: {exc}")
                self.check(scenario, result, name)
            except SnippetError as exc:
                self.outcomes.append(Outcome(post, name, policy.State.FAILED, str(exc)))
                raise
            new_entry = freeze.make_entry(inputs, result)
            state, detail = policy.after_run(decision, entry, new_entry)
            self.outcomes.append(Outcome(post, name, state, detail))
            table[name] = new_entry
            out[name] = result
        text = freeze.dumps(table, post)
        if table != frozen:
            self.pending[path] = text
        self.published[scenario.name] = (scenario, text)
        return out

    def check(self, scenario: Scenario, result: ScenarioResult, kernel: str) -> None:
        """Raise a SnippetError for the first thing the run did not do as the post says."""
        problems = verdict.problems(scenario, result, kernel)
        if problems:
            self._fail(problems[0])

    def _fail(self, message: str) -> None:
        self.failed.append(message)
        raise SnippetError(message)

    def commit(self) -> list[Path]:
        """Write the new captures; only ever after a build that fully succeeded."""
        if self.failed:
            raise RuntimeError("refusing to write captures after a failed build")
        written = []
        for path, text in sorted(self.pending.items()):
            freeze.write_atomic(path, text)
            written.append(path)
        self.pending.clear()
        return written

"""Where a post's results come from: its fresh freeze, or a run in the sandbox.

Nothing is written while a build runs: new captures wait in `pending` until the
whole build has succeeded, so a failed build leaves snippets/ as it was.
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

from runner import backends, config, expect
from runner.normalize import drift, kernel_renames
from runner.scenario import FAILED_STATUSES, Scenario, ScenarioResult

from . import freeze
from .parse import SnippetError

log = logging.getLogger(__name__)

MODES = ("auto", "never", "always")
Runner = Callable[[Scenario, str, Path], ScenarioResult]


def sandbox_runner() -> Runner:
    """The default runner: the backend $KBLOG_BACKEND names (auto if unset), chosen
    once for the whole build."""
    _, run = backends.select(backends.default_name(), lambda msg: log.info("%s", msg))

    def run_post(scenario: Scenario, kernel: str, kmod: Path) -> ScenarioResult:
        def say(msg: str) -> None:
            log.info("%s: %s", scenario.name, msg)

        return run(scenario, kernel, log=say, kmod_dir=kmod)

    return run_post


@dataclass
class Outcome:
    """What a post's build used for one kernel, for the verify table."""

    post: str
    kernel: str
    state: str  # fresh | captured | drifted | failed | stale
    detail: str = ""


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
    # (post name, kernel label) pairs to use, for a share of a verification; None: all.
    cells: frozenset[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        self.mode = os.environ.get("KBLOG_EXECUTE", self.mode)
        if self.mode not in MODES:
            raise ValueError(f"KBLOG_EXECUTE={self.mode!r}: expected one of {', '.join(MODES)}")

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

    def _frozen(
        self, scenario: Scenario, frozen: dict[str, Any], kernel: config.Kernel
    ) -> tuple[dict[str, Any] | None, dict[str, str], bool]:
        """(the frozen entry or None, the key inputs now, whether the entry is fresh)."""
        inputs = freeze.key_inputs(scenario, kernel, self.shared_inputs)
        entry = frozen.get(kernel.name)
        return entry, inputs, entry is not None and entry.get("key") == freeze.key_of(inputs)

    def _kernels_of(self, scenario: Scenario) -> list[str]:
        return [k for k in self.kernels if self._in_share(scenario, k)]

    def _in_share(self, scenario: Scenario, kernel: str) -> bool:
        return self.cells is None or (scenario.name, kernel) in self.cells

    def _stale(self, scenario: Scenario) -> list[str]:
        frozen = freeze.load(self.snippets / f"{scenario.name}.json")
        kernels = [config.kernel(name) for name in self._kernels_of(scenario)]
        return [
            k.name
            for k in kernels
            if self.mode == "always" or not self._frozen(scenario, frozen, k)[2]
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
            # Ctrl-C: start nothing more; the runs under way end with their VMs.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()

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
        frozen = freeze.load(path)
        table = dict(frozen)
        out: dict[str, ScenarioResult] = {}
        for name in self.kernels:
            kernel = config.kernel(name)
            entry, inputs, fresh = self._frozen(scenario, frozen, kernel)
            if not self._in_share(scenario, kernel.name):
                if entry is not None:  # another share runs it: the page shows the capture
                    out[kernel.name] = freeze.entry_result(entry)
                continue
            if entry is not None and fresh and self.mode != "always":
                out[kernel.name] = freeze.entry_result(entry)
                self.outcomes.append(Outcome(post, kernel.name, "fresh"))
                continue
            if self.mode == "never":
                why = (
                    "no capture yet" if entry is None else _changed(entry.get("inputs", {}), inputs)
                )
                message = (
                    f"{post}: the capture for kernel {kernel.name} is stale ({why}) "
                    "and no VM may run (KBLOG_EXECUTE=never)"
                )
                self.outcomes.append(Outcome(post, kernel.name, "stale", message))
                self._fail(message)
            self.vm_runs += 1
            try:
                try:
                    result = self._run(scenario, kernel.name)
                except Exception as exc:
                    self._fail(f"{post}: running the post on kernel {kernel.name} failed: {exc}")
                self.check(scenario, result, kernel.name)
            except SnippetError as exc:
                self.outcomes.append(Outcome(post, kernel.name, "failed", str(exc)))
                raise
            new_entry = freeze.make_entry(inputs, result)
            state, detail = "captured", ""
            # A run on another ABI of the series (verify --newest) is compared with the page
            # too: that capture would be fresh but for the kernel release.
            if entry is not None and (fresh or _differing(entry, inputs) == {"kernel"}):
                was, now = entry["result"], new_entry["result"]
                renames = kernel_renames(was["provenance"], now["provenance"])
                detail = drift(was["steps"], now["steps"], renames)
                state = "drifted" if detail else "fresh"
            self.outcomes.append(Outcome(post, kernel.name, state, detail))
            table[kernel.name] = new_entry
            out[kernel.name] = result
        text = freeze.dumps(table, post)
        if table != frozen:
            self.pending[path] = text
        self.published[scenario.name] = (scenario, text)
        return out

    def check(self, scenario: Scenario, result: ScenarioResult, kernel: str) -> None:
        """Raise a SnippetError for the first step that did not do what the post says."""
        for step, res in zip(scenario.steps, result.steps, strict=True):
            first_line = step.input.split("\n")[0]
            where = (
                f"{step.source}: step {res.index + 1} "
                f"({step.session}: {first_line!r}, kernel {kernel})"
            )
            if res.status in FAILED_STATUSES:
                self._fail(
                    f"{where}: {_explain(res.status, step, res.output)}"
                    + (f"\n{result.error}" if result.error and res.status != "not-run" else "")
                )
            if res.matched is False:
                self._fail(f"{where}: the output differs from the post:\n{res.diff}")
        problems = expect.event_problems(scenario.steps, result.steps, kernel)
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


def _explain(status: str, step, output: str) -> str:
    return {
        "timeout": f"no prompt came back within {step.timeout:g} s "
        "(mark the block expect=hang if that is the point)",
        "unexpected-return": "the post says this never returns (expect=hang), but it did",
        "incomplete-input": "the input does not fit: the program finished the statement "
        "before its last line, or still waited for more after it",
        "panic": "the kernel panicked",
        "lost": "the guest was lost (QEMU exited or the session died)",
        "not-run": f"not run: {output}",
    }.get(status, status)


def _differing(entry: dict[str, Any], inputs: dict[str, str]) -> set[str]:
    old = entry.get("inputs", {})
    return {name for name, value in inputs.items() if old.get(name) != value}


def _changed(old: dict[str, str], new: dict[str, str]) -> str:
    names = [k for k in new if old.get(k) != new[k]]
    return "changed: " + ", ".join(names) if names else "unknown inputs"

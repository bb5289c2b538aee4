"""The freshness policy and the capture bookkeeping, without a VM.

The runner is injected (Captures.runner): these tests are about which posts run,
what is reused, what counts as drift and that a failure writes nothing. Real runs
are in test_snippet_build.py and test_episodes_vm.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kblog import policy
from kblog.captures import Captures
from kblog.parse import SnippetError
from runner import config, freeze
from runner.scenario import Provenance, Scenario, ScenarioResult, Status, Step, StepResult

INPUTS = {"scenario": "s1", "kernel": "6.1.0-56-amd64", "kmod": "k1", "runner": "r1"}


def _entry(inputs: dict[str, str], output: str = "hi") -> dict:
    return freeze.make_entry(inputs, _result(output))


def _result(output: str, status: Status = Status.OK) -> ScenarioResult:
    prov = Provenance("6.1.0-56-amd64", "6.1.1", "tcg", "test", "9.0", "2026-11-29", 0.2, 1.0)
    step = StepResult(0, status, "$ ", "echo hi", output, 0, 0.1, "guest")
    return ScenarioResult("post", prov, [step])


@pytest.mark.parametrize(
    ("mode", "entry", "action", "why"),
    [
        ("auto", INPUTS, policy.Action.REUSE, ""),
        ("auto", None, policy.Action.RUN, "no capture yet"),
        ("auto", {**INPUTS, "runner": "r0"}, policy.Action.RUN, "changed: runner"),
        ("never", INPUTS, policy.Action.REUSE, ""),
        ("never", {**INPUTS, "scenario": "s0"}, policy.Action.REFUSE, "changed: scenario"),
        ("never", None, policy.Action.REFUSE, "no capture yet"),
        ("always", INPUTS, policy.Action.RUN, ""),
    ],
)
def test_decide(mode: str, entry: dict | None, action: policy.Action, why: str) -> None:
    frozen = _entry(entry) if entry is not None else None
    decision = policy.decide(mode, frozen, INPUTS)
    assert (decision.action, decision.why) == (action, why)
    assert decision.fresh == (entry == INPUTS)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="KBLOG_EXECUTE='sometimes'"):
        policy.decide("sometimes", None, INPUTS)


def test_drift_only_for_a_fresh_capture_run_again() -> None:
    published = _entry(INPUTS, "hi")
    same, other = _entry(INPUTS, "hi"), _entry(INPUTS, "bye")
    fresh = policy.decide("always", published, INPUTS)
    assert policy.after_run(fresh, published, same) == (policy.State.FRESH, "")
    state, detail = policy.after_run(fresh, published, other)
    assert state is policy.State.DRIFTED and "-hi" in detail and "+bye" in detail
    stale = policy.decide("auto", None, INPUTS)
    assert policy.after_run(stale, None, other) == (policy.State.CAPTURED, "")


class CountingRunner:
    """Stands in for the sandbox: gives each post a fixed output and counts runs."""

    def __init__(self, output: str, status: Status = Status.OK) -> None:
        self.output, self.status, self.runs = output, status, 0

    def __call__(self, scenario: Scenario, kernel: str, kmod: Path) -> ScenarioResult:
        self.runs += 1
        result = _result(self.output, self.status)
        result.steps[0].input = scenario.steps[0].input
        return result


def _captures(tmp_path: Path, runner: CountingRunner, mode: str = "auto") -> Captures:
    kmod = tmp_path / "kmod"
    kmod.mkdir(exist_ok=True)
    return Captures(snippets=tmp_path / "snippets", kmod=kmod, mode=mode, runner=runner)


POST = Scenario("post", [Step("t", "console", "echo hi", expected=["hi"], source="p.md:3")])


def test_a_capture_is_made_once_then_reused(tmp_path: Path) -> None:
    runner = CountingRunner("hi")
    first = _captures(tmp_path, runner)
    first.results(POST, "content/post.md")
    assert [o.state for o in first.outcomes] == [policy.State.CAPTURED]
    assert first.commit() == [tmp_path / "snippets" / "post.json"]
    again = _captures(tmp_path, runner)
    assert again.results(POST, "content/post.md")[config.DEFAULT_KERNEL].steps[0].output == "hi"
    assert (runner.runs, [o.state for o in again.outcomes]) == (1, [policy.State.FRESH])
    assert again.commit() == []  # nothing changed, nothing written


def test_a_failed_run_writes_nothing(tmp_path: Path) -> None:
    failing = _captures(tmp_path, CountingRunner("", Status.TIMEOUT))
    with pytest.raises(SnippetError, match=r"p\.md:3: step 1 .*no prompt came back within 60 s"):
        failing.results(POST, "content/post.md")
    assert [o.state for o in failing.outcomes] == [policy.State.FAILED]
    with pytest.raises(RuntimeError, match="refusing to write captures"):
        failing.commit()
    assert not (tmp_path / "snippets").exists()


def test_never_mode_fails_on_a_stale_capture_and_runs_nothing(tmp_path: Path) -> None:
    runner = CountingRunner("hi")
    never = _captures(tmp_path, runner, mode="never")
    with pytest.raises(SnippetError, match=r"content/post\.md: .* is stale \(no capture yet\)"):
        never.results(POST, "content/post.md")
    assert runner.runs == 0


def test_always_mode_reports_drift(tmp_path: Path) -> None:
    first = _captures(tmp_path, CountingRunner("hi"))
    first.results(POST, "content/post.md")
    first.commit()
    same = _captures(tmp_path, CountingRunner("hi"), mode="always")
    same.results(POST, "content/post.md")
    assert [o.state for o in same.outcomes] == [policy.State.FRESH]
    # The same post and inputs, but the guest now says something else: drift.
    drifting = _captures(tmp_path, CountingRunner("bye"), mode="always")
    drifting.results(POST, "content/post.md")
    (outcome,) = drifting.outcomes
    assert outcome.state is policy.State.DRIFTED
    assert "-hi" in outcome.detail and "+bye" in outcome.detail
    changed = Scenario("post", [Step("t", "console", "echo hi", expected=["..."], source="p.md:3")])
    moved = _captures(tmp_path, CountingRunner("hi there"), mode="always")
    moved.results(changed, "content/post.md")  # a new scenario: captured, not drift
    assert [o.state for o in moved.outcomes] == [policy.State.CAPTURED]

"""The capture service and the judge's freshness rules, without a VM.

The runner is injected (capture(..., runner=)): these tests are about which posts
run, what is reused, what counts as drift, that every capture shown is judged (the
frozen ones too), that a damaged captures file is named and never silently
overwritten, and that a failure writes nothing. Real runs are in
test_snippet_build.py and test_episodes_vm.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from kblog.captures import JUDGED, Captured, Request, capture
from kblog.parse import Post
from runner import config, freeze, memo
from runner.judge import verdict
from runner.judge.verdict import Action, Outcome
from runner.scenario import (
    Provenance,
    Scenario,
    ScenarioResult,
    SessionRecording,
    Status,
    Step,
    StepResult,
)

INPUTS = {"scenario": "s1", "kernel": "6.1.0-56-amd64", "kmod": "k1", "runner": "r1"}


def _result(
    output: str, status: Status = Status.OK, klog: list[str] | None = None, took: float = 0.1
) -> ScenarioResult:
    prov = Provenance("6.1.0-56-amd64", "6.1.1", "tcg", "test", "9.0", "2026-11-29", 0.2, 1.0)
    step = StepResult(0, status, "$ ", "echo hi", output, 0, 0.1, "guest", kernel_log=klog or [])
    # What the terminal showed, in time: a slower run is no other capture.
    events: list[list[float | str]] = [[0.0, "o", "$ "], [0.1, "m", "1"]]
    events += [[0.1, "o", "echo hi\r\n"], [0.1 + took, "o", f"{output}\r\n$ "]]
    return ScenarioResult(
        "post", prov, [step], recordings={"t": SessionRecording("guest", "shell", events)}
    )


@pytest.mark.parametrize(
    ("mode", "old", "action", "why"),
    [
        ("auto", INPUTS, Action.REUSE, ""),
        ("auto", None, Action.RUN, "no capture yet"),
        ("auto", {**INPUTS, "runner": "r0"}, Action.RUN, "changed: runner"),
        ("never", INPUTS, Action.REUSE, ""),
        ("never", {**INPUTS, "scenario": "s0"}, Action.REFUSE, "changed: scenario"),
        ("never", None, Action.REFUSE, "no capture yet"),
        ("always", INPUTS, Action.RUN, ""),
    ],
)
def test_decide(mode: str, old: dict | None, action: Action, why: str) -> None:
    key = freeze.key_of(old) if old is not None else None
    decision = verdict.decide(mode, key, INPUTS, old or {})
    assert (decision.action, decision.why) == (action, why)
    assert decision.fresh == (old == INPUTS)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="KBLOG_EXECUTE='sometimes'"):
        verdict.decide("sometimes", None, INPUTS, {})


def test_drift_only_for_a_fresh_capture_run_again() -> None:
    published = _result("hi")
    fresh = verdict.decide("always", freeze.key_of(INPUTS), INPUTS, INPUTS)
    assert verdict.after_run(fresh, published, INPUTS, _result("hi"), INPUTS) == (
        Outcome.FRESH,
        "",
    )
    outcome, detail = verdict.after_run(fresh, published, INPUTS, _result("bye"), INPUTS)
    assert outcome is Outcome.DRIFTED and "-hi" in detail and "+bye" in detail
    stale = verdict.decide("auto", None, INPUTS, {})
    assert verdict.after_run(stale, None, {}, _result("bye"), INPUTS) == (Outcome.CAPTURED, "")


def test_drift_ignores_the_recordings() -> None:
    fresh = verdict.decide("always", freeze.key_of(INPUTS), INPUTS, INPUTS)
    slower = _result("hi", took=3.0)
    assert slower.recordings != _result("hi").recordings
    assert verdict.after_run(fresh, _result("hi"), INPUTS, slower, INPUTS) == (Outcome.FRESH, "")


def test_recordings_are_stored_packed_and_read_back(tmp_path: Path) -> None:
    entry = freeze.make_entry(INPUTS, _result("hi"))
    text = freeze.dumps({config.DEFAULT_KERNEL: entry}, "content/post.md")
    assert text == freeze.dumps({config.DEFAULT_KERNEL: entry}, "content/post.md")  # no gzip time
    stored = json.loads(text)["kernels"][config.DEFAULT_KERNEL]["result"]["recordings"]["t"]
    assert (stored["where"], stored["kind"]) == ("guest", "shell")
    assert isinstance(stored["events"], str) and "echo hi" not in stored["events"]
    again = freeze.loads(text, tmp_path / "post.json")[config.DEFAULT_KERNEL]
    assert again.result == entry.result


def test_a_file_of_the_format_before_recordings_is_stale_not_damaged(tmp_path: Path) -> None:
    """Format 1 kept no recordings: its captures read, are stale, and are made again."""
    _capture(tmp_path, CountingRunner("hi")).commit()
    path = tmp_path / "snippets" / "post.json"
    doc = json.loads(path.read_text())
    doc["format"] = 1
    for stored in doc["kernels"].values():
        del stored["result"]["recordings"], stored["inputs"]["format"]
        stored["key"] = freeze.key_of(stored["inputs"])  # as that runner made it
    path.write_text(json.dumps(doc))
    runner = CountingRunner("hi")
    never = _capture(tmp_path, runner, mode="never")
    assert "is stale (changed: format)" in never.errors[0]
    rerun = _capture(tmp_path, runner)
    assert (runner.runs, _outcomes(rerun)) == (1, [Outcome.CAPTURED])
    rerun.commit()
    assert freeze.load(path)[config.DEFAULT_KERNEL].result.recordings["t"].events


def test_one_comparator_for_drift_and_for_kernels_that_differ() -> None:
    oops = ["[   1.5] BUG: unable to handle page fault for address: ffffffffc0001000"]
    quiet, loud = _result("hi"), _result("hi", klog=oops)
    assert verdict.compare(quiet.steps, loud.steps) != ""  # an oops that came or went
    assert verdict.differs({"6.1": quiet.steps, "6.12": loud.steps})
    # Volatile values are no difference, in either use.
    assert (
        verdict.compare(
            _result("pid 41 at 0xffffffffc0001000").steps,
            _result("pid 40 at 0xffffffffc0002000").steps,
        )
        == ""
    )
    assert not verdict.differs({"6.1": quiet.steps, "6.12": _result("hi").steps})
    # Block by block: only the block whose step's capture differs is marked.
    steps = [Step("t", "console", "echo hi", block=0), Step("t", "console", "dmesg", block=1)]
    old = [*quiet.steps, dataclasses.replace(quiet.steps[0], index=1)]
    new = [*quiet.steps, dataclasses.replace(loud.steps[0], index=1)]
    assert verdict.differing_blocks(steps, {"6.1": old, "6.12": new}) == {1}
    assert verdict.differing_blocks(steps, {"6.1": old, "6.12": old}) == set()


class CountingRunner:
    """Stands in for the sandbox: gives each post a fixed output and counts runs."""

    def __init__(self, output: str, status: Status = Status.OK) -> None:
        self.output, self.status, self.runs = output, status, 0

    def __call__(self, scenario: Scenario, kernel: str, kmod: Path) -> ScenarioResult:
        self.runs += 1
        result = _result(self.output, self.status)
        result.steps[0].input = scenario.steps[0].input
        return result


def _post(expected: list[str] | None = None) -> Post:
    step = Step("t", "console", "echo hi", expected=expected or ["hi"], source="p.md:3")
    return Post("content/post.md", "", [], Scenario("post", [step]))


def _capture(
    tmp_path: Path, runner: CountingRunner, mode: str = "auto", post: Post | None = None
) -> Captured:
    kmod = tmp_path / "kmod"
    kmod.mkdir(exist_ok=True)
    request = Request(snippets=tmp_path / "snippets", kmod=kmod, mode=mode)
    return capture([post or _post()], request, runner)


def _outcomes(captured: Captured) -> list[Outcome]:
    return [o.outcome for o in captured.outcomes]


def test_a_capture_is_made_once_then_reused(tmp_path: Path) -> None:
    runner = CountingRunner("hi")
    first = _capture(tmp_path, runner)
    assert _outcomes(first) == [Outcome.CAPTURED]
    assert first.commit() == [tmp_path / "snippets" / "post.json"]
    again = _capture(tmp_path, runner)
    shown = again.posts["content/post.md"].results[config.DEFAULT_KERNEL]
    assert shown.steps[0].output == "hi"
    assert (runner.runs, _outcomes(again)) == (1, [Outcome.FRESH])
    assert again.commit() == []  # nothing changed, nothing written


def test_a_failed_run_writes_nothing(tmp_path: Path) -> None:
    failing = _capture(tmp_path, CountingRunner("", Status.TIMEOUT))
    assert "p.md:3: step 1" in failing.errors[0]
    assert "no prompt came back within 60 s" in failing.errors[0]
    assert _outcomes(failing) == [Outcome.FAILED]
    with pytest.raises(RuntimeError, match="refusing to write captures"):
        failing.commit()
    assert not (tmp_path / "snippets").exists()


def test_never_mode_fails_on_a_stale_capture_and_runs_nothing(tmp_path: Path) -> None:
    runner = CountingRunner("hi")
    never = _capture(tmp_path, runner, mode="never")
    assert never.errors and "content/post.md: " in never.errors[0]
    assert "is stale (no capture yet)" in never.errors[0]
    assert runner.runs == 0


def test_always_mode_reports_drift(tmp_path: Path) -> None:
    anything = _post(["..."])  # the post accepts any output: only drift can tell
    _capture(tmp_path, CountingRunner("hi"), post=anything).commit()
    same = _capture(tmp_path, CountingRunner("hi"), mode="always", post=anything)
    assert _outcomes(same) == [Outcome.FRESH]
    # The same post and inputs, but the guest now says something else: drift.
    drifting = _capture(tmp_path, CountingRunner("bye"), mode="always", post=anything)
    (outcome,) = drifting.outcomes
    assert outcome.outcome is Outcome.DRIFTED
    assert "-hi" in outcome.detail and "+bye" in outcome.detail
    moved = _capture(tmp_path, CountingRunner("hi there"), mode="always", post=_post(["hi..."]))
    assert _outcomes(moved) == [Outcome.CAPTURED]  # a new scenario: captured, not drift


def _edit_stored(tmp_path: Path, change) -> None:
    path = tmp_path / "snippets" / "post.json"
    doc = json.loads(path.read_text())
    change(doc["kernels"][config.DEFAULT_KERNEL]["result"]["steps"][0])
    path.write_text(json.dumps(doc))


def test_a_frozen_capture_is_judged_again_on_every_build(tmp_path: Path) -> None:
    """A capture edited by hand (a merge) or judged by a stricter rule fails the build
    with the post's file:line, without a VM, as a fresh run would."""
    _capture(tmp_path, CountingRunner("hi")).commit()
    _edit_stored(tmp_path, lambda step: step.update(output=["bye"]))
    runner = CountingRunner("hi")
    edited = _capture(tmp_path, runner, mode="never")
    assert runner.runs == 0 and _outcomes(edited) == [Outcome.FAILED]
    assert edited.errors[0].startswith("p.md:3: step 1")
    assert "the output differs from the post" in edited.errors[0]
    assert "a frozen capture" in edited.errors[0]


def test_a_frozen_kernel_log_is_read_by_todays_table(tmp_path: Path) -> None:
    """The events are derived from the stored log on every build: the page's badges
    and the check see what today's detector sees, not what the stored events say."""
    _capture(tmp_path, CountingRunner("hi")).commit()
    oops = "[   12.5] Oops: 0000 [#1] PREEMPT SMP NOPTI"
    _edit_stored(tmp_path, lambda step: step.update(kernel_log=[oops], events=[]))
    judged = _capture(tmp_path, CountingRunner("hi"), mode="never")
    assert "the kernel reported Oops" in judged.errors[0]
    assert "p.md:3: step 1" in judged.errors[0]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: text.replace('"key"', '"kee"', 1), "is malformed (KeyError"),
        (lambda text: text.replace('"events": "H4sI', '"events": "AAAA', 1), "not gzipped"),
        (lambda text: text.replace(f'"format": {freeze.FORMAT}', '"format": 7'), "format 7"),
    ],
)
def test_a_damaged_captures_file_is_named_and_never_overwritten_silently(
    tmp_path: Path, damage, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    _capture(tmp_path, CountingRunner("hi")).commit()
    path = tmp_path / "snippets" / "post.json"
    path.write_text(damage(path.read_text()))
    damaged = path.read_text()
    # Where no VM may run, the build refuses, naming the file and what is wrong.
    never = _capture(tmp_path, CountingRunner("hi"), mode="never")
    assert str(path) in never.errors[0] and named in never.errors[0]
    assert path.read_text() == damaged
    # Where posts may run, the post runs again and says why; the file is made anew.
    rerun = _capture(tmp_path, CountingRunner("hi"))
    assert f"{path}" in caplog.text and "runs again" in caplog.text
    assert _outcomes(rerun) == [Outcome.CAPTURED]
    assert rerun.commit() == [path]
    assert freeze.load(path)[config.DEFAULT_KERNEL].result.steps[0].output == "hi"


def test_an_edited_capture_is_judged_again_despite_the_memo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verdicts of stored captures are kept between builds (kblog.captures.JUDGED), but
    under a key that holds the captures file: a hand edit is a new key, judged afresh."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    _capture(tmp_path, CountingRunner("hi")).commit()
    kept = memo.folder(JUDGED.kind)
    for _ in range(2):  # the first build judges and keeps it, the second reads it
        warm = _capture(tmp_path, CountingRunner("hi"), mode="never")
        assert (warm.errors, len(list(kept.glob("*.json")))) == ([], 1)
    _edit_stored(tmp_path, lambda step: step.update(output=["bye"]))
    edited = _capture(tmp_path, CountingRunner("hi"), mode="never")
    assert edited.errors[0].startswith("p.md:3: step 1")
    assert "the output differs from the post" in edited.errors[0]
    assert len(list(kept.glob("*.json"))) == 2
    # The memo keeps the failure too: the same file fails the same way again.
    again = _capture(tmp_path, CountingRunner("hi"), mode="never")
    assert again.errors == edited.errors

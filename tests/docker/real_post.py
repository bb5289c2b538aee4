"""A real post of content/, read as the site reads it, and judged as the site judges it.

The Docker tests run the posts themselves, not copies of them: a copy drifts from
the post (tests/docker/ep2.json did: three steps short, no expectations) and then
proves nothing about what a reader gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kblog.parse import read_post
from runner import freeze
from runner.judge import expect, verdict
from runner.scenario import Scenario, ScenarioResult

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Post:
    source: str  # as the site names it in messages: content/<name>.md
    scenario: Scenario
    published: dict[str, freeze.Entry]  # snippets/<name>.json: its capture per kernel label

    def capture(self, kernel: str) -> freeze.Entry:
        """The published capture on `kernel`, checked to be a capture of this very post."""
        entry = self.published[kernel]
        assert entry.inputs["scenario"] == self.scenario.digest(), (
            f"snippets/ holds a capture of another version of {self.source} on {kernel}; "
            "re-capture it (make html) before comparing a run with it"
        )
        return entry


def read(name: str) -> Post:
    """content/<name>.md as the site reads it (kblog.parse.read_post), and its captures."""
    path = ROOT / "content" / f"{name}.md"
    source = str(path.relative_to(ROOT))
    scenario = read_post(path, source).scenario
    return Post(source, scenario, freeze.load(ROOT / "snippets" / f"{name}.json"))


def problems(post: Post, result: ScenarioResult, kernel: str) -> list[str]:
    """What keeps the run from being what the post says (the site build's judge)."""
    return verdict.problems(post.scenario, result, kernel)


def outputs_judged_here(post: Post, result: ScenarioResult, kernel: str) -> list[str]:
    """The steps whose output, as it arrived on this host, does not match the post.

    problems() judges the output again too; this names every such step at once."""
    return [
        f"{step.source}: {step.input!r}: {judged.diff}"
        for step, res in zip(post.scenario.steps, result.steps, strict=True)
        if step.expected is not None
        and not (
            judged := verdict.judge_output(
                expect.for_kernel(step.expected, kernel), res.output, res.exit_status
            )
        ).ok
    ]


def drift_from_published(post: Post, result: ScenarioResult, kernel: str) -> str:
    """How the run differs from the published capture, volatile values aside ("" if
    not): the comparison `invoke verify` makes (verdict.after_run)."""
    published = post.capture(kernel).result
    # Through the stored form, as snippets/ keeps it.
    now = freeze.loads(freeze.dumps({kernel: freeze.make_entry({}, result)}, post.source), Path())
    stored = now[kernel].result
    renames = verdict.kernel_renames(published, stored)
    written = verdict.templates(post.scenario.steps, kernel)
    return verdict.compare(published.steps, stored.steps, renames, written)

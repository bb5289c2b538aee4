"""The execution report: for every post on every kernel, what state its capture is in,
when and on what it was made, how long each step took and what the kernel reported;
and the slowest steps of the series.

Data only, made from what the capture service returns; the site's page
(theme/templates/report.html) and `invoke verify --report` render the same rows
through one template (theme/templates/kblog/report.html). Shards of a verification
carry their rows, and a merge joins them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kblog.captures import Captured
from runner.judge.verdict import Outcome
from runner.scenario import ScenarioResult, Step

# How the report words a cell's outcome: "fresh" is the published capture (reused, or
# run again and the same), "re-run" a capture made by this run.
STATES = {
    Outcome.FRESH: "fresh",
    Outcome.CAPTURED: "re-run",
    Outcome.DRIFTED: "drifted",
    Outcome.FAILED: "failed",
    Outcome.STALE: "stale",
    Outcome.NOT_RUN: "not run",
}
SLOWEST = 10  # steps listed in the series' slowest
INPUT_SHOWN = 70  # characters of a step's first typed line


@dataclass
class StepTime:
    n: int  # from 1, in the post
    session: str
    where: str
    input: str  # its first line, cut to INPUT_SHOWN
    seconds: float
    status: str


@dataclass
class EventRow:
    n: int  # the step that caused it
    kind: str
    line: str


@dataclass
class Row:
    """One post on one kernel."""

    post: str  # its source, e.g. content/ep2-kernel-segfaults.md
    kernel: str  # the label, e.g. 6.1
    state: str  # a value of STATES
    detail: str = ""
    captured_at: str = ""
    release: str = ""
    accel: str = ""
    qemu: str = ""
    boot_seconds: float = 0.0
    total_seconds: float = 0.0
    steps: list[StepTime] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        data = dict(data)
        data["steps"] = [StepTime(**s) for s in data.get("steps", [])]
        data["events"] = [EventRow(**e) for e in data.get("events", [])]
        return cls(**data)


def _shown(text: str) -> str:
    first = text.split("\n")[0]
    return first if len(first) <= INPUT_SHOWN else first[: INPUT_SHOWN - 1] + "…"


def row(
    post: str,
    kernel: str,
    outcome: Outcome,
    detail: str,
    steps: Sequence[Step],
    result: ScenarioResult | None,
) -> Row:
    """A cell's row: its outcome, and what its capture says when it has one."""
    found = Row(post, kernel, STATES[outcome], detail)
    if result is None:
        return found
    prov = result.provenance
    found.captured_at, found.release = prov.captured_at, prov.kernel
    found.accel, found.qemu = prov.accel.upper(), prov.qemu
    found.boot_seconds, found.total_seconds = prov.boot_seconds, prov.total_seconds
    for step, done in zip(steps, result.steps, strict=False):
        n = done.index + 1
        found.steps.append(
            StepTime(n, step.session, done.where, _shown(done.input), done.duration, done.status)
        )
        found.events += [EventRow(n, e.kind, e.line) for e in done.events]
    return found


def rows(captured: Captured) -> list[Row]:
    """A row for each cell the capture service judged, in its order."""
    out = []
    for o in captured.outcomes:
        found = captured.posts.get(o.post)
        result = found.results.get(o.kernel) if found is not None else None
        steps = found.post.scenario.steps if found is not None else []
        out.append(row(o.post, o.kernel, o.outcome, o.detail, steps, result))
    return out


def complete(cells: Sequence[tuple[str, str]], found: Iterable[Row]) -> list[Row]:
    """A row for each of `cells`, in their order: those no row covers are "not run";
    rows outside the cells are kept after them."""
    by_cell = {(r.post, r.kernel): r for r in found}
    out = [by_cell.pop(cell, Row(*cell, STATES[Outcome.NOT_RUN])) for cell in cells]
    return out + list(by_cell.values())


def view(report: Sequence[Row]) -> dict[str, Any]:
    """What the report templates are given: rows by post, the slowest steps, counts."""
    posts: dict[str, list[Row]] = {}
    for r in report:
        posts.setdefault(r.post, []).append(r)
    every = [(r, s) for r in report for s in r.steps]
    every.sort(key=lambda pair: pair[1].seconds, reverse=True)
    states: dict[str, int] = {}
    for r in report:
        states[r.state] = states.get(r.state, 0) + 1
    return {
        "posts": [{"post": post, "rows": found} for post, found in posts.items()],
        "slowest": [{"row": r, "step": s} for r, s in every[:SLOWEST]],
        "states": states,
        "cells": len(report),
    }


def to_json(report: Sequence[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in report]


def from_json(data: Iterable[Mapping[str, Any]]) -> list[Row]:
    return [Row.from_json(r) for r in data]


def write(path: Path, report: Sequence[Row], theme: Path) -> None:
    """The report as a file: JSON for a .json path, else a standalone HTML page made
    with the site's own report template (the theme's templates directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(to_json(report), indent=1, ensure_ascii=False) + "\n")
        return
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(theme), autoescape=False, undefined=jinja2.StrictUndefined
    )
    html = env.get_template("kblog/report-file.html").render(report=view(report))
    path.write_text(html)

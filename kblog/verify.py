"""`invoke verify`: re-run posts in the sandbox, the whole series or a stable share of it.

A cell is one post on one kernel. Shard I/N takes every N-th cell of the sorted list,
starting at the I-th, so shards of one run never overlap and together cover every
cell. A shard writes its outcomes to a JSON file; merging the N files of one run gives
the table and verdict a single unsharded run gives. The "run" a file names is a hash
of everything the outcomes depend on (cells, shard count, kernel releases, posts,
captures and the sources of a capture), so files of different commits never mix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kblog import report
from kblog.captures import CellOutcome
from runner.judge import verdict
from runner.judge.verdict import Outcome

from .build import capture_site

FORMAT = 3  # 2: a cell's result is stored as "outcome"; 3: and its report row
KIND = "kblog-verify-shard"
Cell = tuple[str, str]  # (post source, e.g. "content/ep1-first-module.md", kernel label)
# How the table words the outcomes that pass (verdict.fails says which fail).
SHOWN = {Outcome.FRESH: "passed", Outcome.CAPTURED: "passed (new)"}


class VerifyInputError(ValueError):
    """A bad shard spec or merge directory: one line, the user's to fix."""


@dataclass
class Verification:
    """The outcomes of a run (or a share of one), and the build errors no cell explains."""

    cells: list[Cell]
    outcomes: list[CellOutcome]
    releases: dict[str, str]
    newest: bool = False
    errors: list[str] = field(default_factory=list)
    rows: list[report.Row] = field(default_factory=list)  # the execution report's

    def table(self) -> str:
        return table(self.cells, self.outcomes, self.errors)

    def failed(self, update: bool = False) -> bool:
        """Whether the run fails (verdict.fails); with `update`, drift is the point."""
        outcomes = [o.outcome for o in by_cell(self.cells, self.outcomes).values()]
        return bool(self.errors) or any(verdict.fails(o, drift_fails=not update) for o in outcomes)

    def report(self) -> list[report.Row]:
        """The execution report of these cells, in their order ("not run" where none ran)."""
        return report.complete(self.cells, self.rows)


def _outcome(data: Mapping[str, Any]) -> CellOutcome:
    """An outcome as a shard file stores it."""
    return CellOutcome(
        data["post"], data["kernel"], Outcome(data["outcome"]), data.get("detail", "")
    )


def parse_shard(spec: str) -> tuple[int, int]:
    """(I, N) from "I/N", 1 <= I <= N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m:
        raise VerifyInputError(f"--shard {spec!r}: expected I/N, e.g. 1/2")
    index, count = int(m[1]), int(m[2])
    if not 1 <= index <= count:
        raise VerifyInputError(f"--shard {spec}: I must be between 1 and N (shards count from 1)")
    return index, count


def all_cells(posts: Iterable[str], kernels: Sequence[str]) -> list[Cell]:
    """Every post on every kernel: posts sorted, kernels in their configured order."""
    return [(post, kernel) for post in sorted(set(posts)) for kernel in kernels]


def share(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Shard `index` of `count` (from 1): every count-th cell from the index-th on."""
    return list(cells[index - 1 :: count])


def run_id(cells: Sequence[Cell], count: int, releases: Mapping[str, str], inputs: Mapping) -> str:
    """What makes shard files parts of one run."""
    doc = {"cells": list(map(list, cells)), "count": count, "releases": dict(releases)}
    doc["inputs"] = dict(inputs)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def by_cell(cells: Sequence[Cell], outcomes: Iterable[CellOutcome]) -> dict[Cell, CellOutcome]:
    """Each cell's outcome; a cell the run never reached (an earlier kernel of its post
    failed, or the build stopped first) is "not run"."""
    found = {(o.post, o.kernel): o for o in outcomes}
    out = {cell: found.pop(cell, CellOutcome(*cell, Outcome.NOT_RUN)) for cell in cells}
    out.update(found)  # outcomes outside the cells: shown, never dropped
    return out


def table(
    cells: Sequence[Cell], outcomes: Iterable[CellOutcome], errors: Sequence[str] = ()
) -> str:
    """The verify table, in cell order, with each detail indented under its row."""
    lines = [f"{'post':40} {'kernel':8} result"]
    for o in by_cell(cells, outcomes).values():
        lines.append(f"{o.post:40} {o.kernel:8} {SHOWN.get(o.outcome, o.outcome)}")
        if o.detail:
            lines.append("    " + o.detail.replace("\n", "\n    "))
    for error in errors:
        lines.append("build error:\n    " + error.replace("\n", "\n    "))
    return "\n".join(lines)


# --- shard files ------------------------------------------------------------------


def shard_document(run: str, index: int, count: int, part: Verification) -> dict[str, Any]:
    return {
        "kind": KIND,
        "format": FORMAT,
        "run": run,
        "shard": [index, count],
        "releases": part.releases,
        "newest": part.newest,
        "cells": [list(cell) for cell in part.cells],
        "outcomes": [asdict(o) for o in part.outcomes],
        "errors": part.errors,
        "report": report.to_json(part.rows),
    }


def write_shard(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")


def _is_shard(doc: object) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == KIND


def merge(directory: Path) -> Verification:
    """The run whose shard files `directory` holds (all N of them, one run)."""
    if not directory.is_dir():
        raise VerifyInputError(f"--merge {directory}: not a directory")
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(directory.rglob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (ValueError, OSError):
            continue  # not ours
        if _is_shard(doc):
            if doc.get("format") != FORMAT:
                raise VerifyInputError(f"{path}: shard file format {doc.get('format')!r}")
            docs.append((path, doc))
    if not docs:
        raise VerifyInputError(f"--merge {directory}: no shard files (invoke verify --shard I/N)")
    runs = {doc["run"] for _, doc in docs}
    if len(runs) > 1:
        names = ", ".join(f"{p.name} ({d['run']})" for p, d in docs)
        raise VerifyInputError(f"--merge {directory}: shard files of different runs: {names}")
    count = docs[0][1]["shard"][1]
    seen: dict[int, Path] = {}
    for path, doc in docs:
        index = doc["shard"][0]
        if index in seen:
            raise VerifyInputError(f"shard {index}/{count} twice: {seen[index]} and {path}")
        seen[index] = path
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise VerifyInputError(f"--merge {directory}: shard {', '.join(missing)} missing")
    first = docs[0][1]
    cells = [tuple(c) for _, d in docs for c in d["cells"]]
    # Back in the unsharded order: shard I held cells I-1, I-1+N, ...
    ordered: list[Cell] = [("", "")] * len(cells)
    for _, doc in docs:
        index = doc["shard"][0]
        for k, cell in enumerate(doc["cells"]):
            ordered[index - 1 + k * count] = (cell[0], cell[1])
    return Verification(
        cells=ordered,
        outcomes=[_outcome(o) for _, d in docs for o in d["outcomes"]],
        releases=first["releases"],
        newest=first["newest"],
        # Every shard builds the whole site: a site-wide error comes once from each.
        errors=list(dict.fromkeys(e for _, d in docs for e in d["errors"])),
        rows=[r for _, d in docs for r in report.from_json(d["report"])],
    )


# --- running ---------------------------------------------------------------------


@dataclass
class Plan:
    """What a verification of the site at `settings` covers."""

    settings: Path
    content: Path
    cells: list[Cell]
    inputs: dict[str, str]


def plan(settings: Path, kernels: Sequence[str] | None = None) -> Plan:
    """The cells of the site's posts on `kernels` (default: its KBLOG_KERNELS)."""
    from kblog_snippets.plugin import Settings, read_posts

    from runner import freeze, sources

    from .publish import quiet_read_settings

    conf = quiet_read_settings(settings, None)
    content = Path(conf["PATH"])
    root = content.resolve().parent
    labels = list(kernels or Settings.read(conf).kernels)
    cells = all_cells([post.source for post in read_posts(Settings.read(conf))[0]], labels)
    snippets = root / conf.get("KBLOG_SNIPPETS_DIR", "snippets")
    inputs = {
        **freeze.tree_inputs(root / "kmod"),
        "content": sources.tree_digest(content),
        "snippets": sources.tree_digest(snippets) if snippets.is_dir() else "",
    }
    return Plan(settings, content, cells, inputs)


def run(
    plan: Plan, cells: Sequence[Cell], *, update: bool = False, newest: bool = False
) -> tuple[Verification, list[Path]]:
    """Re-run every cell in `cells` in the sandbox and judge it (the kernel releases in
    force are config.kernels()'s: pinned, or what RELEASES_ENV says). No site is built:
    the capture service is the whole check. With `update`, a run where every cell
    passed keeps its captures (the files written are returned)."""
    from runner import config

    from .publish import quiet_read_settings

    labels = list(dict.fromkeys(kernel for _, kernel in plan.cells))
    releases = {label: config.kernel(label).release for label in labels}
    part = Verification(list(cells), [], releases, newest)
    if not cells:
        return part, []
    conf = quiet_read_settings(plan.settings, {"KBLOG_KERNELS": labels})
    names = frozenset((Path(post).stem, kernel) for post, kernel in cells)
    captured, broken = capture_site(conf, mode="always", cells=names)
    part.errors += list(broken.values())
    part.outcomes = list(captured.outcomes)
    part.rows = report.rows(captured)
    written = captured.commit() if update and not part.failed(update=True) else []
    return part, written

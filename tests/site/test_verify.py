"""invoke verify in shards: which cells a shard takes, its file, the merge, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kblog import report, verify
from kblog.captures import CellOutcome
from kblog.verify import Verification, VerifyInputError
from runner.judge.verdict import Outcome

ROOT = Path(__file__).resolve().parents[2]
POSTS = ["content/b.md", "content/a.md", "content/c.md"]
KERNELS = ["6.1", "6.12"]
RELEASES = {"6.1": "6.1.0-56-amd64", "6.12": "6.12.107+deb12-amd64"}


def test_parse_shard() -> None:
    assert verify.parse_shard("1/2") == (1, 2)
    assert verify.parse_shard(" 2 / 2 ") == (2, 2)
    for bad in ("3/2", "0/2", "x", "1/0", "1/", "-1/2", "1/2/3"):
        with pytest.raises(VerifyInputError):
            verify.parse_shard(bad)


def test_shards_partition_the_cells_stably() -> None:
    cells = verify.all_cells(POSTS, KERNELS)
    assert cells[:2] == [("content/a.md", "6.1"), ("content/a.md", "6.12")]
    assert verify.all_cells(reversed(POSTS), KERNELS) == cells  # no order leaks in
    for count in range(1, 8):
        shares = [verify.share(cells, i, count) for i in range(1, count + 1)]
        assert sorted(c for s in shares for c in s) == sorted(cells)
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
        assert shares == [verify.share(cells, i, count) for i in range(1, count + 1)]


def _outcome(cell: tuple[str, str], state: str = "fresh", detail: str = "") -> CellOutcome:
    return CellOutcome(cell[0], cell[1], Outcome(state), detail)


def _write_shards(tmp: Path, states: dict[tuple[str, str], str], count: int) -> Verification:
    """Shard files of one run, and the unsharded Verification they stand for."""
    cells = verify.all_cells(POSTS, KERNELS)
    run = verify.run_id(cells, count, RELEASES, {"content": "x"})
    for i in range(1, count + 1):
        mine = verify.share(cells, i, count)
        outcomes = [_outcome(c, states.get(c, "fresh"), states.get(c, "")) for c in mine]
        part = Verification(mine, outcomes, RELEASES, rows=[_row(c) for c in mine])
        verify.write_shard(tmp / f"s{i}.json", verify.shard_document(run, i, count, part))
    outcomes = [_outcome(c, states.get(c, "fresh"), states.get(c, "")) for c in cells]
    return Verification(cells, outcomes, RELEASES)


def _row(cell: tuple[str, str]) -> report.Row:
    step = report.StepTime(1, "term1", "guest", "ls", 0.25, "ok")
    return report.Row(cell[0], cell[1], "fresh", qemu="7.2", accel="TCG", steps=[step])


def test_merge_joins_the_shards_report_in_cell_order(tmp_path: Path) -> None:
    whole = _write_shards(tmp_path, {}, 3)
    merged = verify.merge(tmp_path)
    assert merged.report() == [_row(c) for c in whole.cells]
    # A cell no shard reached is in the report, as not run.
    part = Verification(whole.cells, [], RELEASES, rows=[_row(whole.cells[0])])
    assert [r.state for r in part.report()] == ["fresh"] + ["not run"] * (len(whole.cells) - 1)


def test_merge_gives_the_unsharded_table_and_verdict(tmp_path: Path) -> None:
    states = {("content/b.md", "6.12"): "drifted"}
    whole = _write_shards(tmp_path, states, 3)
    (tmp_path / "unrelated.json").write_text('{"not": "a shard"}')
    merged = verify.merge(tmp_path)
    assert merged.cells == whole.cells
    assert merged.table() == whole.table()
    assert merged.failed() and not merged.failed(update=True)  # drift fails a verification
    for shard in ("s1.json", "s2.json"):  # a site-wide error, as each shard reports it
        doc = json.loads((tmp_path / shard).read_text())
        (tmp_path / shard).write_text(json.dumps({**doc, "errors": ["dead link"]}))
    assert verify.merge(tmp_path).errors == ["dead link"]
    assert (
        "content/b.md                             6.12     drifted\n    drifted" in merged.table()
    )


def test_a_cell_without_outcome_is_not_run_and_fails() -> None:
    cells = verify.all_cells(["content/a.md"], KERNELS)
    done = Verification(cells, [_outcome(cells[0], "failed", "step 1 failed")], RELEASES)
    assert done.table().splitlines()[1:] == [
        "content/a.md                             6.1      failed",
        "    step 1 failed",
        "content/a.md                             6.12     not run",
    ]
    assert done.failed(update=True)
    assert not Verification(cells, [_outcome(c) for c in cells], RELEASES).failed()
    assert Verification(cells, [_outcome(c) for c in cells], RELEASES, errors=["boom"]).failed()


def test_merge_refuses_what_is_not_one_whole_run(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VerifyInputError, match="no shard files"):
        verify.merge(empty)
    with pytest.raises(VerifyInputError, match="not a directory"):
        verify.merge(tmp_path / "nowhere")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _write_shards(mixed, {}, 2)
    doc = json.loads((mixed / "s2.json").read_text())
    doc["run"] = "0123456789abcdef"
    (mixed / "s2.json").write_text(json.dumps(doc))
    with pytest.raises(VerifyInputError, match="different runs"):
        verify.merge(mixed)
    partial = tmp_path / "partial"
    partial.mkdir()
    _write_shards(partial, {}, 3)
    (partial / "s2.json").unlink()
    with pytest.raises(VerifyInputError, match="shard 2/3 missing"):
        verify.merge(partial)


def test_run_id_changes_with_what_the_outcomes_depend_on() -> None:
    cells = verify.all_cells(POSTS, KERNELS)
    base = verify.run_id(cells, 2, RELEASES, {"content": "x"})
    assert base == verify.run_id(cells, 2, dict(RELEASES), {"content": "x"})
    assert base != verify.run_id(cells, 3, RELEASES, {"content": "x"})
    assert base != verify.run_id(cells, 2, {**RELEASES, "6.1": "6.1.0-57-amd64"}, {"content": "x"})
    assert base != verify.run_id(cells, 2, RELEASES, {"content": "y"})
    assert base != verify.run_id(cells[1:], 2, RELEASES, {"content": "x"})


def _invoke(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env={**os.environ, "KBLOG_BACKEND": "local"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kernel", "6.2"], "unknown kernel '6.2'; configured kernels: 6.1, 6.12"),
        (["--shard", "3/2"], "verify: --shard 3/2: I must be between 1 and N"),
        (["--shard", "0/2"], "verify: --shard 0/2: I must be between 1 and N"),
        (["--shard", "x"], "verify: --shard 'x': expected I/N, e.g. 1/2"),
        (["--merge", "EMPTY"], "no shard files"),
        (["--merge", "MIXED"], "shard files of different runs"),
        (["--update", "--newest"], "drop --shard and --newest"),
        (["--update", "--shard", "1/2"], "drop --shard and --newest"),
        (["--merge", "EMPTY", "--kernel", "6.1"], "verify --merge takes no other option"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "EMPTY").mkdir()
    _write_shards(tmp_path / "MIXED", {}, 2)
    doc = json.loads((tmp_path / "MIXED" / "s1.json").read_text())
    doc["run"] = "another"
    (tmp_path / "MIXED" / "s1.json").write_text(json.dumps(doc))
    args = [str(tmp_path / a) if a in ("EMPTY", "MIXED") else a for a in args]
    done = _invoke("verify", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


@pytest.mark.vm
def test_two_shards_merged_give_the_unsharded_table(tmp_path: Path) -> None:
    """The real series on kernel 6.1: once whole, once as shards 1/2 and 2/2."""
    started = time.monotonic()
    whole = _invoke(
        "verify", "--kernel", "6.1", "--report", str(tmp_path / "whole.json"), timeout=900
    )
    shards = tmp_path / "shards"
    for i in (1, 2):
        out = shards / f"shard-{i}.json"
        done = _invoke(
            "verify", "--kernel", "6.1", "--shard", f"{i}/2", "--out", str(out), timeout=900
        )
        assert done.returncode == whole.returncode, done.stdout + done.stderr
        # Four posts in two shards: two cells each.
        assert len(json.loads(out.read_text())["cells"]) == 2
    merged_report = tmp_path / "merged.html"
    merged = _invoke("verify", "--merge", str(shards), "--report", str(merged_report))
    assert merged.returncode == whole.returncode, merged.stderr
    assert merged.stdout == whole.stdout
    # The execution report: every cell, with its steps' times, merged as the table is.
    found = report.from_json(json.loads((tmp_path / "whole.json").read_text()))
    assert [(r.post, r.kernel) for r in found] == [
        (f"content/{name}.md", "6.1")
        for name in (
            "ep1-first-module",
            "ep2-kernel-segfaults",
            "ep3-system-call",
            "ep4-looking-inside",
        )
    ]
    assert all(r.steps and r.accel and r.qemu and r.captured_at for r in found), found
    page = merged_report.read_text()
    for r in found:
        assert f"<h2>{r.post}</h2>" in page
    assert "The slowest steps of the series" in page
    rows = merged.stdout.splitlines()
    assert rows[0].split() == ["post", "kernel", "result"]
    assert [r.split()[:2] for r in rows[1:] if not r.startswith(" ")] == [
        ["content/ep1-first-module.md", "6.1"],
        ["content/ep2-kernel-segfaults.md", "6.1"],
        ["content/ep3-system-call.md", "6.1"],
        ["content/ep4-looking-inside.md", "6.1"],
    ]
    print(f"three verifications in {time.monotonic() - started:.0f} s")

"""A warm build keeps what it can between builds (runner/memo.py), and still shows
and judges the captures as they are now: the real posts and captures, in a copy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kblog.build import BuildError, build_site
from kblog.parse import read_post
from runner import memo

ROOT = Path(__file__).resolve().parents[2]


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    for part in ("content", "snippets", "kmod", "kernel"):
        shutil.copytree(ROOT / part, site / part)
    return site


def _build(site: Path, n: int) -> str:
    out = site / f"out{n}"
    build_site(ROOT / "pelicanconf.py", out, {"PATH": str(site / "content")}, mode="never")
    return (out / "first-kernel-module.html").read_text()


def test_an_edited_capture_shows_and_is_judged_despite_what_builds_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    site = _site(tmp_path)
    cold = _build(site, 1)
    kept = {kind: len(list(memo.folder(kind).glob("*.json"))) for kind in ("judged", "views")}
    assert kept == {"judged": 8, "views": 4}  # 4 posts on 2 kernels; a page each
    assert _build(site, 2) == cold  # warm: the same page
    # A capture edited by hand (a merge): a step took longer. The page shows it.
    captures = site / "snippets" / "ep1-first-module.json"
    doc = json.loads(captures.read_text())
    steps = doc["kernels"]["6.1"]["result"]["steps"]
    slow = re.compile(r'class="kb-duration">1\d\d\.\d\d s<')
    assert not slow.search(cold)
    steps[0]["duration"] += 100
    captures.write_text(json.dumps(doc))
    assert slow.search(_build(site, 3))
    # A step's output no longer what the post says: the build fails with its file:line.
    post = read_post(site / "content" / "ep1-first-module.md", "content/ep1-first-module.md")
    step = next(s for s in post.scenario.steps if s.expected and s.expected != ["..."])
    steps[post.scenario.steps.index(step)]["output"] = ["something else"]
    captures.write_text(json.dumps(doc))
    with pytest.raises(BuildError, match=re.escape(f"{step.source}: step")):
        _build(site, 4)

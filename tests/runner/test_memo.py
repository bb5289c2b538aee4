"""Answers kept between builds: the store itself (runner/memo.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner import memo


def test_an_unreadable_entry_is_a_miss_and_old_ones_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    probe = memo.Memo("probe", "runner.memo", ("runner.memo",))
    at = probe.key(["question"])
    assert probe.get(at) is None
    probe.put(at, {"answer": 42})
    assert probe.get(at) == {"answer": 42}
    (memo.folder("probe") / f"{at}.json").write_text('{"answer": ')  # cut short
    assert probe.get(at) is None
    old = probe.key(["old question"])
    probe.put(old, 1)
    memo.prune(memo.folder("probe"), now=time.time() + memo.UNUSED_FOR + 60)
    assert list(memo.folder("probe").iterdir()) == []

"""Answers kept between builds (runner/memo.py): apt's linux-source version, here
with the real apt-cache, and the store itself."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from runner import memo
from runner.kernels import debian
from runner.kernels import source as kernel_source


def _apt_cache_version() -> str:
    argv = ["apt-cache", "show", "--no-all-versions", kernel_source.PACKAGE]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Version:"))


def test_apt_s_answer_is_kept_until_one_of_apt_s_files_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    asked: list[str] = []
    real_show = debian.show

    def show(package: str) -> dict[str, str]:
        asked.append(package)
        return real_show(package)

    monkeypatch.setattr(debian, "show", show)
    assert kernel_source.offered_version() == _apt_cache_version()
    assert kernel_source.offered_version() == _apt_cache_version()
    assert asked == [kernel_source.PACKAGE]  # once: the second answer was kept
    # One more file apt reads (a pin in preferences.d, say): the key follows it.
    pin = tmp_path / "pin"
    pin.write_text("Package: none\n")
    monkeypatch.setattr(debian, "APT_INPUTS", (*debian.APT_INPUTS, pin))
    kernel_source.offered_version()
    pin.write_text("Package: other\n")  # a new size and date, as an edit gives
    kernel_source.offered_version()
    assert asked == [kernel_source.PACKAGE] * 3


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

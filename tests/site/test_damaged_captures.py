"""A damaged snippets/*.json (bad JSON, a missing field, another format number): the
build names the file and what is wrong; under KBLOG_EXECUTE=never it refuses and
leaves everything as it was, otherwise it runs the post again, says so, and writes a
whole new file. Never a traceback, never a silent overwrite."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from minisite import POSTS, ROOT, MiniSite, echo_runner, tree_bytes

import kblog.captures
from kblog.build import BuildError
from runner import freeze


@pytest.fixture(autouse=True)
def echo_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts run on the echo runner: captures are made and kept without a VM."""
    monkeypatch.setattr(kblog.captures, "sandbox_runner", lambda display=None: echo_runner)


DAMAGE: dict[str, tuple[Callable[[str], str], str]] = {
    "cut short": (lambda text: text[: len(text) // 2], "not valid JSON"),
    "a missing field": (lambda text: text.replace('"inputs"', '"inputz"', 1), "is malformed"),
    "another format": (
        lambda text: text.replace(f'"format": {freeze.FORMAT}', '"format": 9', 1),
        "format 9",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_captures_file_is_named_then_refused_or_made_anew(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "content").mkdir()
    (tmp_path / "kmod").symlink_to(ROOT / "kmod")
    site = MiniSite(tmp_path)
    shutil.copy(POSTS / "second.md", site.content)
    site.build()
    captures = site.snippets / "second.json"
    change, named = DAMAGE[damage]
    captures.write_text(change(captures.read_text()))
    before = {**tree_bytes(site.snippets), **tree_bytes(site.output)}

    with pytest.raises(BuildError) as refused:
        site.build(mode="never")
    message = str(refused.value)
    assert str(captures) in message and named in message
    assert "Traceback" not in message
    assert {**tree_bytes(site.snippets), **tree_bytes(site.output)} == before

    with caplog.at_level(logging.WARNING):
        report = site.build()
    assert f"{captures}" in caplog.text and "runs again" in caplog.text
    assert report.captures_written == [captures]
    assert freeze.load(captures)  # whole again, and readable

"""A full disk under output/ or snippets/: the build fails with one line naming the
path, and the previous site and captures stay as they were, whole."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fulldisk import fill, tmpfs
from minisite import POSTS, ROOT, MiniSite, echo_runner, tree_bytes

import kblog.captures
from kblog.build import BuildError


@pytest.fixture(autouse=True)
def echo_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts run on the echo runner: captures are made and kept without a VM."""
    monkeypatch.setattr(kblog.captures, "sandbox_runner", lambda display=None: echo_runner)


def _site(root: Path) -> MiniSite:
    (root / "content").mkdir(parents=True)
    (root / "kmod").symlink_to(ROOT / "kmod")
    site = MiniSite(root)
    # Captures are written in name order: second.json (1 page), then the bigger
    # z-every-tag.json (2 pages).
    shutil.copy(POSTS / "second.md", site.content)
    shutil.copy(POSTS / "every-tag.md", site.content / "z-every-tag.md")
    return site


def _edit_every_post(site: MiniSite) -> None:
    """Every post's scenario changes: each runs again and has a new capture to write."""
    block = "\n```{.console session=edit}\n$ echo edited\nedited\n```\n"
    for post in site.content.glob("*.md"):
        post.write_text(post.read_text() + block)


def _fails_naming(site: MiniSite, path: Path) -> str:
    with pytest.raises(BuildError) as failed:
        site.build()
    message = str(failed.value)
    assert str(path) in message and "No space left on device" in message, message
    assert message.count("No space left") == 1 and "Traceback" not in message, message
    return message


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def test_a_full_disk_under_output_fails_the_build_and_keeps_the_old_site(disk: Path) -> None:
    site = _site(disk / "site")  # the whole checkout on the small disk
    site.build()
    before = tree_bytes(site.output), tree_bytes(site.snippets)
    _edit_every_post(site)
    filler = fill(disk, leave=64 * 1024)  # room for a few pages of the new site, not all
    _fails_naming(site, disk / "site")
    assert (tree_bytes(site.output), tree_bytes(site.snippets)) == before
    assert not list(site.root.glob(".output.*"))  # no staging dir left to fill it more
    filler.unlink()
    assert site.build().captures_written  # with room again, the same build succeeds


def test_a_full_disk_under_snippets_keeps_every_old_capture(tmp_path: Path, disk: Path) -> None:
    site = _site(tmp_path / "site")
    site.build()
    shutil.copytree(site.snippets, disk / "snippets")
    shutil.rmtree(site.snippets)
    site.snippets.symlink_to(disk / "snippets")  # snippets/ alone on the small disk
    before = tree_bytes(site.output), tree_bytes(site.snippets)
    _edit_every_post(site)
    # Room for the first new captures file, not the second: written one by one, the
    # first new one would stand beside the second old one, a half-updated snippets/.
    filler = fill(disk, leave=4096)
    assert "snippets/z-every-tag.json: No space" in _fails_naming(site, site.snippets)
    assert (tree_bytes(site.output), tree_bytes(site.snippets)) == before
    # No temporary captures file left behind either.
    assert sorted(p.name for p in site.snippets.iterdir()) == ["second.json", "z-every-tag.json"]
    filler.unlink()
    assert len(site.build().captures_written) == 2

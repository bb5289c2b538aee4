"""What the build reads as posts, through the build itself (kblog.build.build_site):
a snippet error fails it with file:line, every Markdown extension Pelican reads is
run, and what Pelican ignores (hidden files, an editor's lock) is ignored here too."""

from __future__ import annotations

from pathlib import Path

import pytest
from minisite import ROOT, MiniSite, echo_runner

import kblog.captures
from kblog.build import BuildError

HEAD = "Title: {name}\nDate: 2026-11-02\nSlug: {name}\n\n"


@pytest.fixture(autouse=True)
def echo_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts run on the echo runner: captures are made and kept without a VM."""
    monkeypatch.setattr(kblog.captures, "sandbox_runner", lambda display=None: echo_runner)


def _site(tmp_path: Path) -> MiniSite:
    (tmp_path / "content").mkdir()
    (tmp_path / "kmod").symlink_to(ROOT / "kmod")
    return MiniSite(tmp_path)


def test_a_snippet_error_fails_the_build_with_its_line(tmp_path: Path) -> None:
    site = _site(tmp_path)
    site.add(
        "bad.md", HEAD.format(name="bad") + "```{.console session=t timeout=soon}\n$ ls\n```\n"
    )
    with pytest.raises(BuildError) as failed:
        site.build()
    assert "content/bad.md:5: timeout=soon is not a number" in str(failed.value)
    assert not site.output.exists()


def test_every_markdown_extension_is_run_and_hidden_files_are_not(tmp_path: Path) -> None:
    site = _site(tmp_path)
    site.add(
        "long.markdown", HEAD.format(name="long") + "```{.console session=t}\n$ echo hi\nhi\n```\n"
    )
    # An editor's lock file: a dangling link Pelican ignores, and so must the build.
    (site.content / ".#long.markdown").symlink_to("user@host.1234:1700000000")
    report = site.build()
    assert report.captures_written == [site.snippets / "long.json"]
    assert "kb-step" in (site.output / "long.html").read_text()


def test_a_post_whose_last_line_is_blank_spaces_builds(tmp_path: Path) -> None:
    """Markdown drops whitespace-only lines after adding two newlines: the post read
    once must be the text Markdown sees, whatever its end."""
    site = _site(tmp_path)
    body = "```{.console session=t}\n$ echo hi\nhi\n```\n   "
    site.add("spaces.md", HEAD.format(name="spaces") + body)
    site.build()
    assert "kb-step" in (site.output / "spaces.html").read_text()


def test_a_missing_replay_player_fails_the_build_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `npm ci` the build stops at once, naming the file and the fix, instead
    of after minutes of runs whose captures it would then throw away."""
    import kblog_snippets.plugin as snippets_plugin

    runs: list[str] = []

    def counting_runner(scenario, kernel, kmod):  # type: ignore[no-untyped-def]
        runs.append(kernel)
        return echo_runner(scenario, kernel, kmod)

    monkeypatch.setattr(kblog.captures, "sandbox_runner", lambda display=None: counting_runner)
    monkeypatch.setattr(snippets_plugin, "PLAYER", tmp_path / "no-node-modules")
    site = _site(tmp_path)
    site.add("hi.md", HEAD.format(name="hi") + "```{.console session=t}\n$ echo hi\nhi\n```\n")
    with pytest.raises(BuildError) as failed:
        site.build()
    assert "asciinema-player.min.js: missing" in str(failed.value)
    assert "npm ci" in str(failed.value)
    assert runs == []
    assert not site.output.exists() and not (site.snippets / "hi.json").exists()

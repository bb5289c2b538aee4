"""Bad input stops the build, naming the file and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kblog_series import ContentError
from kblog_series.frontmatter import read_front_matter
from sitebuild import Post, build_tiny

HEAD = ("Title: Part one", "Date: 2026-01-01")


def _raises(content: Path, path: Path, line: int, words: str) -> ContentError:
    """Build ``content``; assert it fails on ``path``:``line`` with ``words`` in the text."""
    with pytest.raises(ContentError) as caught:
        build_tiny(content)
    error = caught.value
    assert error.path.resolve() == path.resolve()
    assert error.line == line
    assert re.search(words, str(error)), str(error)
    assert f"{path.name}:{line}: " in str(error)
    return error


def test_a_good_series_builds(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    write("one.md", *HEAD, "Series: kmod", "Series_index: 1")
    write(
        "two.md",
        "Title: Part two",
        "Date: 2026-01-02",
        "Series: kmod",
        "Series_index: 2",
        body="Back to [one]({filename}one.md).\n",
    )
    write(
        "draft.md",
        "Title: Part three",
        "Date: 2026-01-03",
        "Status: draft",
        "Series: kmod",
        "Series_index: 3",
    )
    out = build_tiny(content)
    two = (out / "part-two.html").read_text()
    assert "Part 2 of 2" in two  # the draft is not counted
    assert 'href="/part-one.html"' in two


def test_unknown_series(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("one.md", *HEAD, "Tags: x", "Series: kmdo", "Series_index: 1")
    _raises(content, post, 4, r"unknown series 'kmdo' \(known series: kmod\)")


def test_missing_series_index(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("one.md", *HEAD, "Series: kmod")
    _raises(content, post, 3, r"no 'Series_index: N'")


def test_series_index_that_is_not_a_number(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("one.md", *HEAD, "Series: kmod", "Series_index: first")
    _raises(content, post, 4, r"whole number from 1, not 'first'")


def test_duplicate_series_index(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    write("a.md", *HEAD, "Series: kmod", "Series_index: 1")
    dup = write("b.md", "Title: Also one", "Date: 2026-01-02", "Series: kmod", "Series_index: 1")
    error = _raises(content, dup, 4, r"part 1 of series 'kmod' is already a\.md")
    assert "b.md:4:" in str(error)


def test_gap_in_series(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    write("a.md", *HEAD, "Series: kmod", "Series_index: 1")
    three = write("c.md", "Title: Three", "Date: 2026-01-03", "Series: kmod", "Series_index: 3")
    _raises(content, three, 4, r"no part 2 before part 3")


def test_series_index_without_series(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", *HEAD, "Series_index: 1")
    _raises(content, post, 3, r"without 'Series'")


def test_dead_filename_link(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    write("a.md", *HEAD)
    body = "Fine: [a]({filename}a.md).\n\nSee [the missing one]({filename}ep9-nope.md).\n"
    post = write("b.md", "Title: B", "Date: 2026-01-02", body=body)
    _raises(content, post, 6, r"dead link \{filename\}ep9-nope\.md")


def test_dead_static_link_in_a_page(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    write("a.md", *HEAD)
    page = write("pages/about.md", "Title: About", body="![chip]({static}images/none.png)\n")
    _raises(content, page, 3, r"dead link \{static\}images/none\.png")


def test_link_inside_a_code_block_is_not_checked(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    write("a.md", *HEAD, body="```\n[x]({filename}not-a-link.md)\n```\n")
    assert (build_tiny(content) / "part-one.html").is_file()


def test_link_inside_an_indented_code_block_is_not_checked(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    body = (
        "Run this:\n\n    [x]({filename}not-a-link.md)\n\n- item\n\n        [y]({filename}no.md)\n"
    )
    write("a.md", *HEAD, body=body)
    assert (build_tiny(content) / "part-one.html").is_file()


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("- one\n\n    See [it]({filename}ep9-nope.md).\n", 6),  # a list item's paragraph
        ("- a\n\n    - b\n\n        See [it]({filename}ep9-nope.md).\n", 8),  # nested
        ("Text.[^1]\n\n[^1]: A note.\n\n    More [it]({filename}ep9-nope.md).\n", 8),
        ("Term\n:   Its meaning.\n\n    More [it]({filename}ep9-nope.md).\n", 7),
        ('<div>\n\n    <a href="{filename}ep9-nope.md">it</a>\n</div>\n', 6),
    ],
    ids=["list", "nested-list", "footnote", "definition", "html"],
)
def test_dead_link_in_indented_text_that_is_not_code(
    tiny_site: tuple[Path, Post], body: str, line: int
) -> None:
    """Indented under a list item, a footnote or a definition, a line continues it:
    its link is a real one, as the rendered page shows."""
    content, write = tiny_site
    post = write("b.md", "Title: B", "Date: 2026-01-02", body=body)
    _raises(content, post, line, r"dead link \{filename\}ep9-nope\.md")


def test_unterminated_front_matter(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", raw="---\nTitle: A\nDate: 2026-01-01\n\nText.\n")
    _raises(content, post, 1, r"opened with '---' is not closed")


def test_front_matter_never_closed_at_end_of_file(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", raw="---\nTitle: A\nDate: 2026-01-01\n")
    _raises(content, post, 1, r"never closed")


def test_closed_front_matter_builds(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    write("a.md", raw="---\nTitle: A\nDate: 2026-01-01\n---\n\nText.\n")
    assert (build_tiny(content) / "a.html").is_file()


def test_unparsable_date(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", "Title: A", "Tags: x", "Date: the 32nd of Smarch")
    _raises(content, post, 3, r"cannot read the date 'the 32nd of Smarch'")


def test_unparsable_modified_date(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", *HEAD, "Modified: yesterday-ish")
    _raises(content, post, 3, r"cannot read the modified")


def test_missing_title(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", "Date: 2026-01-01", "Tags: x")
    _raises(content, post, 1, r"no 'Title:'")


def test_no_header_at_all(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", raw="# Just a heading\n\nText.\n")
    _raises(content, post, 1, r"no metadata header")


def test_line_that_is_not_metadata(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", raw="Title: A\nDate: 2026-01-01\nSeries kmod\n\nText.\n")
    _raises(content, post, 3, r"not a 'Key: value' metadata line")


def test_metadata_after_a_stray_blank_line(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", raw="Title: A\n\nDate: 2026-01-01\n\nText.\n")
    _raises(content, post, 3, r"'Date:' looks like metadata .* line 2")


def test_key_set_twice(tiny_site: tuple[Path, Post]) -> None:
    content, write = tiny_site
    post = write("a.md", *HEAD, "Title: A again")
    _raises(content, post, 3, r"'Title' is set twice")


def test_continuation_lines_are_joined(tmp_path: Path) -> None:
    post = tmp_path / "a.md"
    post.write_text("Title: A\nSummary: one\n    two\nDate: 2026-01-01\n\nText.\n")
    matter = read_front_matter(post)
    summary = matter.get("summary")
    assert summary is not None and summary.value == "one\ntwo" and summary.line == 2
    assert matter.last_line == 5


def test_error_message_is_path_colon_line(tmp_path: Path) -> None:
    error = ContentError(tmp_path / "x.md", 7, "something is wrong")
    assert str(error) == f"{tmp_path / 'x.md'}:7: something is wrong"
    assert (error.line, error.message) == (7, "something is wrong")

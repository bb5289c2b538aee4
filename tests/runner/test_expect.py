"""runner.judge.expect: how a step's real output is held against what its author wrote."""

from __future__ import annotations

import pytest

from runner.judge import expect


def ok(expected: list[str], actual: list[str]) -> bool:
    return expect.match(expected, actual).ok


class TestEllipsisLine:
    def test_matches_many_lines(self) -> None:
        assert ok(["first", "...", "last"], ["first", "a", "b", "c", "last"])

    def test_matches_no_line(self) -> None:
        assert ok(["first", "...", "last"], ["first", "last"])

    def test_alone_matches_anything_even_nothing(self) -> None:
        assert ok(["..."], [])
        assert ok(["..."], ["x", "y"])

    def test_trailing(self) -> None:
        assert ok(["first", "..."], ["first"])
        assert ok(["first", "..."], ["first", "more"])

    def test_leading(self) -> None:
        assert ok(["...", "last"], ["noise", "last"])
        assert not ok(["...", "last"], ["last", "noise"])

    def test_lines_around_it_still_count(self) -> None:
        assert not ok(["first", "...", "last"], ["first", "a", "b"])
        assert not ok(["first", "...", "last"], ["zeroth", "first", "last"])

    def test_two_ellipses_backtrack(self) -> None:
        assert ok(["...", "x", "...", "y"], ["x", "x", "y", "x", "y"])


class TestInlineEllipsis:
    def test_any_text_on_the_line(self) -> None:
        assert ok(["[...] chardev: got major ..."], ["[    5.65] chardev: got major 245"])

    def test_empty_text(self) -> None:
        assert ok(["a...b"], ["ab"])

    def test_does_not_cross_lines(self) -> None:
        assert not ok(["a...b"], ["a", "b"])

    def test_rest_is_literal(self) -> None:
        # Regex characters in expectations mean themselves.
        assert not ok(["a.c"], ["abc"])
        assert ok(["(x) [y]*"], ["(x) [y]*"])

    def test_trailing_blanks_ignored(self) -> None:
        assert ok(["text   "], ["text"])
        assert ok(["text"], ["text  "])

    def test_whole_line_must_match(self) -> None:
        assert not ok(["Hello"], ["Hello world"])
        assert not ok(["world"], ["Hello world"])


class TestCaptures:
    def test_capture_one_word(self) -> None:
        m = expect.match(
            ["...mknod /dev/chardev c @major@ 0..."],
            ["[ 5.6] chardev: ... mknod /dev/chardev c 245 0"],
        )
        assert m.ok
        assert m.captures == {"major": "245"}

    def test_capture_is_non_blank(self) -> None:
        assert not ok(["@word@"], ["two words"])
        assert not ok(["x @word@"], ["x "])

    def test_several_names(self) -> None:
        m = expect.match(["@a@ and @b@"], ["1 and 2"])
        assert m.captures == {"a": "1", "b": "2"}

    def test_back_reference_on_one_line(self) -> None:
        assert ok(["@n@ is @n@"], ["7 is 7"])
        assert not ok(["@n@ is @n@"], ["7 is 8"])

    def test_back_reference_across_lines(self) -> None:
        # A name used on two lines stands for one value, as it does on one line.
        assert ok(["major @m@", "node c @m@ 0"], ["major 245", "node c 245 0"])
        assert not ok(["major @m@", "node c @m@ 0"], ["major 245", "node c 246 0"])

    def test_capture_after_ellipsis_line(self) -> None:
        m = expect.match(["...", "pid @pid@"], ["noise", "pid 121"])
        assert m.captures == {"pid": "121"}

    def test_no_captures_on_mismatch(self) -> None:
        m = expect.match(["@a@", "b"], ["1", "c"])
        assert not m.ok
        assert m.captures == {}


class TestDiff:
    def test_empty_on_success(self) -> None:
        assert expect.match(["a"], ["a"]).diff == ""

    def test_shows_expected_against_captured(self) -> None:
        m = expect.match(
            ["I already told you 0 times Hello world!"], ["I already told you 1 times Hello world!"]
        )
        assert not m.ok
        lines = m.diff.splitlines()
        assert lines[:2] == ["--- expected", "+++ captured"]
        assert "-I already told you 0 times Hello world!" in lines
        assert "+I already told you 1 times Hello world!" in lines

    def test_missing_and_extra_lines(self) -> None:
        assert "-b" in expect.match(["a", "b"], ["a"]).diff.splitlines()
        assert "+b" in expect.match(["a"], ["a", "b"]).diff.splitlines()


class TestSubstitute:
    def test_replaces_captured_values(self) -> None:
        got = expect.substitute("sudo mknod /dev/chardev c @major@ 0", {"major": "245"}, "p:1")
        assert got == "sudo mknod /dev/chardev c 245 0"

    def test_text_without_names_unchanged(self) -> None:
        assert expect.substitute("echo a@b.c", {}, "p:1") == "echo a@b.c"

    def test_unknown_name_names_the_source(self) -> None:
        with pytest.raises(expect.CaptureError, match=r"post\.md:12: @major@ is used before"):
            expect.substitute("mknod c @major@ 0", {}, "post.md:12")


class TestAsWritten:
    """What the author writes as `...` or `@name@` reads as written in comparisons."""

    def test_lines_with_varying_parts_read_as_the_template(self) -> None:
        written = ["1 S kblog-agent", "... S bash", "... R drgn"]
        assert expect.as_written(written, ["1 S kblog-agent", "36 S bash", "42 R drgn"]) == (
            expect.as_written(written, ["1 S kblog-agent", "37 S bash", "47 R drgn"])
        )
        assert expect.as_written(["@shell@ bash"], ["36 bash"]) == ["@shell@ bash"]

    def test_what_the_author_wrote_out_is_kept(self) -> None:
        written = ["1 S kblog-agent", "... R drgn"]
        assert expect.as_written(written, ["1 S kblog-agent", "42 S drgn"]) == [
            "1 S kblog-agent",
            "42 S drgn",  # no match: every line kept, and drift shows the state changed
        ]

    def test_lines_under_a_whole_line_ellipsis_are_kept(self) -> None:
        assert expect.as_written(["...", "done"], ["CC a.o", "LD b", "done"]) == [
            "CC a.o",
            "LD b",
            "done",
        ]

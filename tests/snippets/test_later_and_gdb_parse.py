"""gdb blocks and output=later / output=collect, on the Markdown side alone: how
they split into steps, and each misuse refused with the file and line."""

from __future__ import annotations

import pytest

from kblog.parse import SnippetError, find_blocks, scenario_of
from runner.scenario import Scenario


def scenario(text: str) -> Scenario:
    return scenario_of(find_blocks(text, "post.md"), "post")


def block(attrs: str, *lines: str, language: str = "console") -> str:
    return "\n".join([f"```{{.{language} {attrs}}}", *lines, "```", ""])


GDB_LATER = block("session=dbg output=later", "(gdb) hbreak *0x1", "(gdb) continue", language="gdb")
SHELL_LATER = block("session=t output=later", "$ uname -r")
GDB_COLLECT = block(
    "session=dbg output=collect", "(gdb) continue", "(gdb) bt", "#0 ...", language="gdb"
)
SHELL_COLLECT = block("session=t output=collect", "$ uname -r", "...")


def test_gdb_inputs_and_the_later_collect_pairs() -> None:
    steps = scenario("\n".join([GDB_LATER, SHELL_LATER, GDB_COLLECT, SHELL_COLLECT])).steps
    assert [(s.language, s.input, s.output) for s in steps] == [
        ("gdb", "hbreak *0x1", "now"),
        ("gdb", "continue", "later"),  # the block's last input only
        ("console", "uname -r", "later"),
        ("gdb", "continue", "collect"),  # the block's first input only
        ("gdb", "bt", "now"),
        ("console", "uname -r", "collect"),
    ]
    assert steps[4].expected == ["#0 ..."]
    assert all(s.where == "guest" for s in steps)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SHELL_LATER,
            r"post\.md:2: output=later, but no later block of session 't' collects its output",
        ),
        (SHELL_COLLECT, r"post\.md:2: output=collect, but nothing was started in session 't'"),
        (
            SHELL_LATER + block("session=t output=collect", "$ uname -a"),
            r"post\.md:5: output=collect types 'uname -a', but what session 't' started at "
            r"post\.md:2 is 'uname -r'",
        ),
        (
            SHELL_LATER + block("session=t", "$ true") + SHELL_COLLECT,
            r"post\.md:5: session 't' still runs 'uname -r' \(output=later at post\.md:2\)",
        ),
        (
            block("session=b where=build", "$ make")
            + SHELL_LATER
            + block("session=u boot=built", "$ true")
            + SHELL_COLLECT,
            r"post\.md:8: boot=built starts another guest, but 'uname -r' \(output=later at "
            r"post\.md:5\) is not collected yet",
        ),
        (
            block("session=t output=later expect=hang", "$ sleep 9"),
            r"post\.md:2: output=later and expect=hang exclude each other",
        ),
        (
            block("session=t output=later", "$ echo \\", "done"),
            r"post\.md:2: output=later needs a one-line input",
        ),
        (
            block("session=dbg where=build", "(gdb) bt", language="gdb"),
            r"post\.md:2: a gdb session debugs the guest: it cannot be where=build",
        ),
        (
            block("session=dbg expect=hang", "(gdb) continue", language="gdb"),
            r"post\.md:2: a gdb step cannot expect=hang",
        ),
        (
            block("session=dbg", "bt", language="gdb"),
            r"post\.md:2: output before any input line \(gdb inputs start '\(gdb\) '\)",
        ),
        (
            block("session=t output=soon", "$ true"),
            r"post\.md:1: output=soon is not one of later, collect",
        ),
        (
            block("session=t", "$ true") + block("session=t", "(gdb) bt", language="gdb"),
            r"post\.md:5: session 't' is a shell session in the guest environment; this step "
            r"uses it as gdb",
        ),
    ],
)
def test_misuse_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(SnippetError, match=message):
        scenario(text)

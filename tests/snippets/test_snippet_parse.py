"""The snippet syntax: which blocks run, how they split into steps, what is refused.

No VM here: these check the Markdown side alone, with Python-Markdown's TestCase.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

import markdown
import pytest
from kblog_snippets.extension import SnippetsExtension
from markdown.test_tools import TestCase

from kblog.parse import PARSED, SnippetError, find_blocks, markdown_text, read_post
from runner import memo
from runner.config import ROOT
from runner.judge import expect

CONTENT = ROOT / "content"


def steps_of(text: str):
    return [s for b in find_blocks(text, "post.md") for s in b.steps]


class PlainBlocksStayPlain(TestCase):
    """A block without session= is fenced_code's business, even with the extension on."""

    default_kwargs: ClassVar = {"extensions": ["fenced_code", SnippetsExtension(page="")]}

    def test_highlighted_block_untouched(self) -> None:
        self.assertMarkdownRenders(
            "```{.console}\n$ uname -r\n6.1.0\n```",
            '<pre><code class="language-console">$ uname -r\n6.1.0\n</code></pre>',
        )

    def test_executed_block_without_provider_is_an_error(self) -> None:
        with pytest.raises(SnippetError, match=r"<markdown>: executed blocks, but no results"):
            markdown.markdown(
                "```{.console session=t}\n$ true\n```",
                extensions=["fenced_code", SnippetsExtension(page="")],
            )


def test_console_inputs_outputs_and_continuations() -> None:
    steps = steps_of(
        "Intro\n\n```{.console session=t}\n"
        "$ echo one \\\n  two\none two\n"
        "$ for i in 1 2; do\n> echo $i\n> done\n1\n2\n"
        "$ grep DEBUG_INFO= config\n# CONFIG_DEBUG_INFO is not set\n```\n"
    )
    assert [s.input for s in steps] == [
        "echo one \\\n  two",
        "for i in 1 2; do\necho $i\ndone",
        "grep DEBUG_INFO= config",
    ]
    # "# " starts output, not input: kernel configs and Makefiles are full of it.
    assert [s.expected for s in steps] == [
        ["one two"],
        ["1", "2"],
        ["# CONFIG_DEBUG_INFO is not set"],
    ]
    assert [s.source for s in steps] == ["post.md:4", "post.md:7", "post.md:12"]


def test_pycon_compound_statement_gets_its_closing_blank_line() -> None:
    (first, second) = steps_of(
        "```{.pycon session=py}\n>>> for i in range(2):\n...     print(i)\n0\n1\n>>> x = 1\n```\n"
    )
    assert first.input == "for i in range(2):\n    print(i)\n"
    assert first.expected == ["0", "1"]
    assert second.input == "x = 1" and second.expected == []


def test_hang_applies_to_the_last_input_only() -> None:
    steps = steps_of("```{.pycon session=py expect=hang timeout=3}\n>>> x = 1\n>>> f.read()\n```\n")
    assert [s.expect_hang for s in steps] == [False, True]
    assert {s.timeout for s in steps} == {3.0}


def test_build_blocks_and_blocks_numbered_in_order() -> None:
    text = (
        "```{.console session=b where=build}\n$ make\n...\n```\n\n"
        "```c\nint x;\n```\n\n"
        "```{.console session=t}\n$ ls\n```\n"
    )
    blocks = find_blocks(text, "post.md")
    assert [(b.line, b.session, b.steps[0].where, b.steps[0].block) for b in blocks] == [
        (1, "b", "build", 0),
        (10, "t", "guest", 1),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x\n```{.console session=t colour=red}\n$ ls\n```\n",
            r"post.md:2: unknown attribute colour=",
        ),
        ("```{.sh session=t}\n$ ls\n```\n", r"post.md:1: .*exactly one language"),
        ("a\n\n```{.console session=t}\n$ ls\n", r"post.md:3: this code fence is never closed"),
        ("```{.console expect=hang}\n$ ls\n```\n", r"post.md:1: expect= needs a session="),
        ("```{.console session=t}\nhello\n$ ls\n```\n", r"post.md:2: output before any input"),
        (
            "```{.console session=t timeout=soon}\n$ ls\n```\n",
            r"post.md:1: timeout=soon is not a number",
        ),
        ("```{.console session=t expect=crash}\n$ ls\n```\n", r"post.md:1: expect=crash"),
        (
            "```{.pycon session=t where=build}\n>>> 1\n```\n",
            r"post.md:2: the build environment only",
        ),
        ("```{.console session=t}\n```\n", r"post.md:1: the block has no input line"),
    ],
)
def test_bad_blocks_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(SnippetError, match=message):
        find_blocks(text, "post.md")


def test_kernel_specific_expectations() -> None:
    lines = ["common", "[on 6.1] old wording", "[on 6.12] new wording"]
    assert expect.for_kernel(lines, "6.1") == ["common", "old wording"]
    assert expect.for_kernel(lines, "6.12") == ["common", "new wording"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```{.console sesion=t}\n$ ls\n```\n", r"post.md:1: unknown attribute sesion= and no"),
        ("- item\n\n    ```{.console session=t}\n    $ ls\n    ```\n", r"post.md:3: .*left margin"),
        ("```{.console session=t}\n$ uname -r\n[on 6.21] 6.21.0\n```\n", r"post.md:2: \[on 6.21\]"),
    ],
)
def test_blocks_that_would_silently_not_run_are_refused(text: str, message: str) -> None:
    with pytest.raises(SnippetError, match=message):
        find_blocks(text, "post.md")


def test_pycon_output_starting_with_dots_is_output() -> None:
    (step,) = steps_of("```{.pycon session=py}\n>>> print('...done')\n...done\n```\n")
    assert step.input == "print('...done')"
    assert step.expected == ["...done"]


def test_a_post_is_read_as_markdown_sees_it(tmp_path) -> None:
    """The blocks' offsets are found once, in the text Markdown's preprocessors get:
    tabs, CRLF and a BOM must not move them."""
    raw = (
        "\ufeffIntro\r\n\r\n```{.console session=t}\r\n$ printf 'a\\tb\\n'\r\n  \r\na\tb\r\n```\r\n"
    )
    path = tmp_path / "post.md"
    path.write_bytes(raw.encode())
    post = read_post(path, "content/post.md")
    md = markdown.Markdown(extensions=["fenced_code"])
    seen = "\n".join(
        md.preprocessors["normalize_whitespace"].run(raw.removeprefix("\ufeff").split("\n"))
    )
    assert seen.rstrip("\n") == post.text.rstrip("\n") == markdown_text(raw).rstrip("\n")
    (block,) = post.blocks
    assert seen[block.start : block.end].startswith("```{.console session=t}")
    assert seen[block.start : block.end].endswith("```")


# --- kernel-events= ---------------------------------------------------------------


def test_kernel_events_reach_every_step_of_the_block() -> None:
    steps = steps_of(
        '```{.console session=t kernel-events="WARNING" kernel-events-6.12="WARNING refcount"}\n'
        "$ one\n$ two\n```\n"
    )
    assert [s.kernel_events for s in steps] == [
        {"*": ["WARNING"], "6.12": ["WARNING", "refcount"]}
    ] * 2
    assert expect.events_for_kernel(steps[0].kernel_events, "6.1") == ["WARNING"]
    assert expect.events_for_kernel(steps[0].kernel_events, "6.12") == ["WARNING", "refcount"]


def test_a_block_without_kernel_events_declares_none() -> None:
    (step,) = steps_of("```{.console session=t}\n$ true\n```\n")
    assert step.kernel_events is None
    assert expect.events_for_kernel(step.kernel_events, "6.1") == []


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            'kernel-events="Oops warning"',
            r"post\.md:1: kernel-events= names unknown kernel event kinds: warning",
        ),
        ('kernel-events-7.0="Oops"', r"post\.md:1: unknown attribute kernel-events-7\.0="),
    ],
)
def test_bad_kernel_events_name_the_line(attrs: str, message: str) -> None:
    with pytest.raises(SnippetError, match=message):
        steps_of(f"```{{.console session=t {attrs}}}\n$ true\n```\n")


def test_the_docs_list_every_attribute_the_parser_reads() -> None:
    """An attribute is declared once (kblog.parse.ATTRIBUTES); the author's reference
    (docs/snippets.md, Options) names each one, with the default the Step has."""
    from kblog.parse import ATTRIBUTES
    from runner.config import ROOT

    options = (ROOT / "docs" / "snippets.md").read_text().split("## Options", 1)[1]
    table = options.split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `([\w-]+)=", table, re.M))
    assert documented == ATTRIBUTES.keys() - {"session"}
    timeout = ATTRIBUTES["timeout"].default
    assert f"(default {timeout:g})" in table


@pytest.mark.parametrize("post", sorted(CONTENT.glob("*.md")), ids=lambda p: p.name)
def test_a_post_s_model_is_its_scenario_s_json(post: Path) -> None:
    """Post.model (what memos of a post's judging are keyed by) holds all of
    Scenario.to_json, places included, and Post.digest is Scenario.digest."""
    read = read_post(post, f"content/{post.name}")
    assert read.model == json.dumps(read.scenario.to_json(), sort_keys=True)
    assert read.digest == read.scenario.digest()


@pytest.mark.parametrize("post", sorted(CONTENT.glob("*.md")), ids=lambda p: p.name)
def test_a_kept_post_is_the_post_read_again(
    post: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posts are kept between builds (kblog.parse.PARSED): the kept one is equal in
    every part to the one read, and an edit that breaks it is found with its line."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    source = f"content/{post.name}"
    read = read_post(post, source)
    kept = read_post(post, source)
    assert kept == read and (kept.model, kept.digest) == (read.model, read.digest)
    assert [b.steps for b in kept.blocks] == [b.steps for b in read.blocks]
    assert len(list(memo.folder(PARSED.kind).glob("*.json"))) == 1
    copy = tmp_path / post.name
    copy.write_text(post.read_text().replace("```{", "```{unknown=1 ", 1))
    line = post.read_text()[: post.read_text().index("```{")].count("\n") + 1
    with pytest.raises(SnippetError, match=rf"^{source}:{line}: unknown attribute unknown="):
        read_post(copy, source)
    # Windows line ends read as read_text() reads them.
    copy.write_bytes(post.read_bytes().replace(b"\n", b"\r\n"))
    assert read_post(copy, source) == read

"""Every example of docs/snippets.md is a post the test suite builds: the examples
are held word for word against two posts under tests/snippets/posts/, and those
posts are built in a real guest (kernel-post.md also by test_bundle_vm.py, which
reproduces it from its bundle)."""

from __future__ import annotations

import re
import textwrap

import pytest
from minisite import POSTS, MiniSite

from runner import config

DOCS = config.ROOT / "docs" / "snippets.md"
KERNEL_SECTION = "## Building and booting the kernel itself"
# The posts that carry the examples: the kernel recipe's, and everything else's.
KERNEL_POST = "kernel-post.md"
EXAMPLES_POST = "docs-examples.md"


def doc_examples() -> list[tuple[str, str]]:
    """Each executed example of the page (an indented fenced block with a session),
    as a post would hold it, with the section it is in."""
    found = []
    section = ""
    lines = DOCS.read_text().splitlines()
    n = 0
    while n < len(lines):
        line = lines[n]
        if line.startswith("## "):
            section = line
        if line.startswith("    ```{") and "session=" in line:
            end = lines.index("    ```", n + 1)
            block = textwrap.dedent("\n".join(lines[n : end + 1]))
            found.append((section, block))
            n = end
        n += 1
    return found


def test_every_example_of_the_docs_is_in_a_tested_post_word_for_word() -> None:
    examples = doc_examples()
    assert len(examples) >= 6  # shells, Python, the build, the kernel recipe, a hang
    posts = {name: (POSTS / name).read_text() for name in (KERNEL_POST, EXAMPLES_POST)}
    for section, block in examples:
        name = KERNEL_POST if section == KERNEL_SECTION else EXAMPLES_POST
        assert block + "\n" in posts[name], (
            f"{DOCS}: this example of {section!r} is not in {name}:\n{block}"
        )


def test_the_kernel_recipe_ends_where_make_does() -> None:
    """The recipe's expected output ends as make's does, after the kernel's line."""
    recipe = next(block for section, block in doc_examples() if "bzImage" in block)
    tail = recipe.splitlines()[-3:]
    assert tail == [
        "Kernel: arch/x86/boot/bzImage is ready  (#1)",
        "make[1]: Leaving directory '/home/user/build'",
        "```",
    ]
    assert re.search(r"kblog_hello-\$\(make -s kernelversion", recipe)


@pytest.mark.vm
def test_the_docs_examples_post_builds_as_written(minisite: MiniSite) -> None:
    minisite.add(EXAMPLES_POST)
    minisite.build()
    assert (minisite.snippets / "docs-examples.json").is_file()


@pytest.mark.vm
def test_the_docs_kernel_recipe_builds_and_boots_as_written(minisite: MiniSite) -> None:
    (minisite.root / "kernel").symlink_to(config.KERNEL_DIR)
    minisite.add(KERNEL_POST)
    minisite.build()
    assert (minisite.snippets / "kernel-post.json").is_file()

"""Code excerpts in the posts are real: every line shown is in a file under kmod/.

That holds for the kernel patches too: a ```diff block shows lines of a kmod/ *.patch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sitebuild import ROOT

CONTENT = ROOT / "content"
KMOD = ROOT / "kmod"
# Excerpted languages and the kmod/ files they may come from.
SOURCES = {"c": ("*.c", "*.h"), "make": ("Makefile", "Kbuild"), "diff": ("*.patch",)}
FENCE = re.compile(r"^```(?P<lang>[a-z]+)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
ELISION = "..."


def excerpts() -> list[tuple[str, str, int, list[str]]]:
    found = []
    for post in sorted(CONTENT.glob("*.md")):
        text = post.read_text()
        for match in FENCE.finditer(text):
            if match["lang"] in SOURCES:
                line = text.count("\n", 0, match.start()) + 1
                found.append((post.name, match["lang"], line, match["body"].splitlines()))
    return found


def candidates(lang: str) -> list[Path]:
    return sorted({p for pattern in SOURCES[lang] for p in KMOD.rglob(pattern)})


def is_excerpt_of(shown: list[str], source: list[str]) -> bool:
    """Every shown line, in order, is a line of the source; "..." skips lines."""
    position = 0
    for line in shown:
        if line.strip() == ELISION:
            continue
        try:
            position = source.index(line.rstrip(), position) + 1
        except ValueError:
            return False
    return True


@pytest.mark.parametrize(("post", "lang", "line", "shown"), excerpts(), ids=lambda v: str(v)[:30])
def test_excerpt_is_real(post: str, lang: str, line: int, shown: list[str]) -> None:
    files = candidates(lang)
    assert files, f"kmod/ has no .{lang} sources for {post}:{line} to be an excerpt of"
    sources = {p: [s.rstrip() for s in p.read_text().splitlines()] for p in files}
    matches = [p for p, lines in sources.items() if is_excerpt_of(shown, lines)]
    assert matches, f"{post}:{line}: this ```{lang} block is not an excerpt of any file in kmod/"


def test_the_posts_have_excerpts() -> None:
    assert len(excerpts()) >= 10

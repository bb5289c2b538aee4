"""The Markdown side: executed fenced blocks become captured terminals.

A preprocessor, run before fenced_code (priority 25) and before meta (27) so that
offsets are those of the whole file, replaces each executed block with its capture.
It parses nothing: the post was read once (kblog.parse.read_post), with its blocks'
places in the text Markdown gives here, and its results were found or made before
any post was read. It only looks them up and renders them through the theme's
template (`page` does both). Blocks without a session are left to fenced_code.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor

from kblog.parse import Post, SnippetError

# A fence that names a session: an executed block (kblog.parse says it in full).
EXECUTED_FENCE = re.compile(r"^(?:`{3,}|~{3,})\s*\{[^}]*\bsession=")


class Page(Protocol):
    """Where the extension finds a post's blocks, what the template shows of each
    (views.blocks) and the block template."""

    def page(self, source: str) -> tuple[Post, list[dict[str, Any]]] | None: ...

    def render_block(self, block: dict[str, Any]) -> str: ...


class SnippetsPreprocessor(Preprocessor):
    def __init__(self, md: Markdown, ext: SnippetsExtension) -> None:
        super().__init__(md)
        self.ext = ext

    def run(self, lines: list[str]) -> list[str]:
        source = self.ext.getConfig("source")
        page: Page | None = self.ext.getConfig("page") or None
        if page is None:
            if any("session=" in line for line in lines):
                raise SnippetError(f"{source}: executed blocks, but no results")
            return lines
        found = page.page(source)
        if found is None:
            if any(EXECUTED_FENCE.match(line) for line in lines):
                raise SnippetError(f"{source}: executed blocks, but the build never read this post")
            return lines
        post, shown = found
        text = "\n".join(lines)
        if text.rstrip("\n") != post.text.rstrip("\n"):
            # Pelican converts metadata (a Summary) with the same Markdown: that text
            # has no blocks. Executed blocks in any other text mean the file changed.
            if "session=" not in text:
                return lines
            raise SnippetError(f"{source}: the post changed while the site was being built")
        if not shown:  # a share of a verification that runs none of it, never captured
            return lines
        pieces, pos = [], 0
        for block, view in zip(post.blocks, shown, strict=True):
            html = page.render_block(view)
            pieces += [text[pos : block.start], f"\n{self.md.htmlStash.store(html)}\n"]
            pos = block.end
        pieces.append(text[pos:])
        return "".join(pieces).split("\n")


class SnippetsExtension(Extension):
    def __init__(self, **kwargs: Any) -> None:
        self.config = {
            "page": ["", "the build's plugin: each post's blocks, results and template (Page)"],
            "source": ["<markdown>", "the post's path, for messages; the reader sets it"],
        }
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:
        md.registerExtension(self)
        md.preprocessors.register(SnippetsPreprocessor(md, self), "kblog_snippets", 28)


def makeExtension(**kwargs: Any) -> SnippetsExtension:
    return SnippetsExtension(**kwargs)

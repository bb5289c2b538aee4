"""The Markdown side: executed fenced blocks become captured terminals.

A preprocessor, run before fenced_code (priority 25) and before meta (27) so line
numbers are those of the file, finds the blocks that name a session, looks up
the post's results, and stashes the rendered HTML in their place. It only turns
text into HTML: the results were made (or found frozen) before any post was
read, by the plugin (kblog_snippets.plugin) at Pelican's `initialized` signal.
Blocks without a session are left to fenced_code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor

from kblog import render
from kblog.parse import SnippetError, find_blocks, scenario_of
from runner.scenario import Scenario, ScenarioResult

# (the post's path, its scenario) -> its result per kernel; raises SnippetError.
Results = Callable[[str, Scenario], dict[str, ScenarioResult]]


class SnippetsPreprocessor(Preprocessor):
    def __init__(self, md: Markdown, ext: SnippetsExtension) -> None:
        super().__init__(md)
        self.ext = ext

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        source = self.ext.getConfig("source")
        blocks = find_blocks(text, source)
        if not blocks:
            return lines
        results: Results | None = self.ext.getConfig("results") or None
        if results is None:
            raise SnippetError(f"{source}:{blocks[0].line}: executed blocks, but no results")
        per_kernel = results(source, scenario_of(blocks, Path(source).stem))
        if not per_kernel:  # a share of a verification that runs none of it, never captured
            return lines
        pieces, pos, index = [], 0, 0
        for block in blocks:
            n = len(block.steps)
            block_results = {k: r.steps[index : index + n] for k, r in per_kernel.items()}
            html = render.render_block(
                render.block_id(block.steps[0]),
                block.steps,
                block_results,
                len(per_kernel) > 1 and render.differs(block_results),
            )
            index += n
            pieces += [text[pos : block.start], f"\n{self.md.htmlStash.store(html)}\n"]
            pos = block.end
        pieces.append(text[pos:])
        return "".join(pieces).split("\n")


class SnippetsExtension(Extension):
    def __init__(self, **kwargs: Any) -> None:
        self.config = {
            "results": ["", "where the post's results come from (see Results)"],
            "source": ["<markdown>", "the post's path, for messages; the reader sets it"],
        }
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:
        md.registerExtension(self)
        md.preprocessors.register(SnippetsPreprocessor(md, self), "kblog_snippets", 28)


def makeExtension(**kwargs: Any) -> SnippetsExtension:
    return SnippetsExtension(**kwargs)

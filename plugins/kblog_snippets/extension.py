"""The Markdown side: executed fenced blocks become captured terminals.

A preprocessor, run before fenced_code (priority 25) and before meta (27) so line
numbers are those of the file, finds the blocks that name a session, asks the
captures provider for the post's results, and stashes the rendered HTML in
their place. Blocks without a session are left to fenced_code.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor

from . import render
from .parse import SnippetError, find_blocks, scenario_of

# The post being converted, set by the Pelican reader (Markdown has no notion of it).
CURRENT_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kblog_current_source", default=None
)


class SnippetsPreprocessor(Preprocessor):
    def __init__(self, md: Markdown, ext: SnippetsExtension) -> None:
        super().__init__(md)
        self.ext = ext

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        source = CURRENT_SOURCE.get() or self.ext.getConfig("source")
        blocks = find_blocks(text, source)
        if not blocks:
            return lines
        captures = self.ext.getConfig("captures")
        if not captures:
            raise SnippetError(
                f"{source}:{blocks[0].line}: executed blocks, but no captures provider"
            )
        scenario = scenario_of(blocks, Path(source).stem)
        per_kernel = captures.results(scenario, source)
        if not per_kernel:  # a share of a verification that runs none of it, never captured
            return lines
        pieces, pos, index = [], 0, 0
        differences = []
        for block in blocks:
            n = len(block.steps)
            block_id = f"step-{block.steps[0].block + 1}"
            block_results = {k: r.steps[index : index + n] for k, r in per_kernel.items()}
            differs = len(per_kernel) > 1 and render.differs(block_results)
            if differs:
                typed = "; ".join(step.input.split("\n")[0] for step in block.steps)
                label = typed if len(typed) <= 60 else typed[:59] + "…"
                differences.append({"step_id": block_id, "label": f"{block.session}: {label}"})
            html = render.render_block(block_id, block.steps, block_results, differs)
            index += n
            placeholder = self.md.htmlStash.store(html)
            pieces += [text[pos : block.start], f"\n{placeholder}\n"]
            pos = block.end
        pieces.append(text[pos:])
        self.ext.documents[source] = {
            "provenance": render.render_provenance(
                [vars(r.provenance) for r in per_kernel.values()], captures.kmod_digest()
            ),
            "differences": differences,
            "bundle": scenario.name,
        }
        return "".join(pieces).split("\n")


class SnippetsExtension(Extension):
    def __init__(self, **kwargs: Any) -> None:
        self.config = {
            "captures": ["", "the Captures provider that runs or reuses results"],
            "source": ["<markdown>", "the post's path, for messages, when no reader sets it"],
        }
        # What the reader needs after conversion, by post: Pelican's reader calls
        # reset() again to render the summary, so this must outlive reset().
        self.documents: dict[str, dict[str, Any]] = {}
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:
        md.registerExtension(self)
        self.md = md
        md.preprocessors.register(SnippetsPreprocessor(md, self), "kblog_snippets", 28)


def makeExtension(**kwargs: Any) -> SnippetsExtension:
    return SnippetsExtension(**kwargs)

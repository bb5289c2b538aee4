"""Fail on an internal link whose target Pelican cannot find.

Pelican replaces ``{filename}``, ``{static}`` and ``{attach}`` links when it writes a
page, and for a target it cannot find it only logs a warning and leaves the raw
``{filename}...`` text in the href. This check runs once every generator has read
its files, finds each such link in the Markdown source (outside code), resolves
it the way Pelican does, and raises ContentError with the line that holds it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .errors import ContentError

CHECKED_KINDS = ("filename", "static", "attach")


def _candidates(content: Any, url_path: str) -> list[str]:
    """The content-relative keys Pelican tries for one link path, in its order."""
    keys = []
    for variant in (url_path, unquote(url_path), urlparse(unescape(url_path)).path):
        if variant.startswith("/"):
            keys.append(variant[1:])
        else:
            keys.append(
                content.get_relative_source_path(os.path.join(content.relative_dir, variant))
            )
    return keys


def _resolves(content: Any, kind: str, url_path: str, context: Mapping[str, Any]) -> bool:
    """True when Pelican will find the target and the file behind it exists.

    Pelican registers every ``{static}`` target as static content before it
    checks that the file is there, so existence on disk is checked too.
    """
    tables = ["generated_content", "static_content"] if kind == "filename" else ["static_content"]
    base = Path(content.settings["PATH"])
    for key in _candidates(content, url_path):
        for table in tables:
            if context[table].get(key) is not None and (base / key).is_file():
                return True
    return False


# A {filename}/{static}/{attach} (or |filename|) link target in Markdown source.
_KINDS = "|".join(CHECKED_KINDS)
LINK = re.compile(rf"(?:\{{({_KINDS})\}}|\|({_KINDS})\|)([^\s\"'<>()\[\]]+)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+).*?\1")
LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d+[.)])\s")
CODE_INDENT = 4  # columns that make an indented code block; twice that inside a list


class IndentedCode:
    """Follows Markdown's indented code blocks, line by line: a line indented by
    CODE_INDENT after a blank line starts one (inside a list item, where such a
    line continues the item, it takes twice that); indented lines continue it."""

    def __init__(self) -> None:
        self.in_code = False
        self.in_list = False
        self.after_blank = True

    def holds(self, line: str) -> bool:
        if not line.strip():
            self.after_blank = True
            return self.in_code
        width = len(line.expandtabs(CODE_INDENT)) - len(line.expandtabs(CODE_INDENT).lstrip())
        needed = CODE_INDENT * (2 if self.in_list else 1)
        self.in_code = width >= needed and (self.after_blank or self.in_code)
        if not self.in_code:
            if LIST_ITEM.match(line):
                self.in_list = True
            elif width == 0 and self.after_blank:
                self.in_list = False
        self.after_blank = False
        return self.in_code


def links_in(text: str) -> list[tuple[int, str, str]]:
    """(line, kind, target) of each internal link in Markdown source, as Pelican would
    see it: not inside fenced or indented code or a code span."""
    found = []
    fence: str | None = None
    indented = IndentedCode()
    for number, line in enumerate(text.splitlines(), start=1):
        m = FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker
            elif marker.startswith(fence[0]) and len(marker) >= len(fence):
                fence = None
            continue
        if fence is not None or indented.holds(line):
            continue
        for link in LINK.finditer(CODE_SPAN.sub("", line)):
            found.append((number, link.group(1) or link.group(2), link.group(3)))
    return found


def check_links(contents: Iterable[Any], context: Mapping[str, Any]) -> None:
    """Raise ContentError for the first dead intrasite link found in ``contents``."""
    for content in contents:
        if not content.source_path:
            continue
        path = Path(content.source_path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError:
            continue
        for number, kind, value in links_in(text):
            url_path = urlparse(unescape(value)).path
            if not _resolves(content, kind, url_path, context):
                raise ContentError(
                    path,
                    number,
                    f"dead link {{{kind}}}{value}: no post, page or static file has that path",
                )

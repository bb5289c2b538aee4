"""Fail on an internal link whose target Pelican cannot find.

Pelican replaces ``{filename}``, ``{static}`` and ``{attach}`` links when it writes a
page, and for a target it cannot find it only logs a warning and leaves the raw
``{filename}...`` text in the href. This check runs once every generator has read
its files, finds each such link in the Markdown source, keeps those that Markdown
renders as an href or src (not code, however it is indented), resolves them the
way Pelican does, and raises ContentError with the line that holds the dead one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from markdown import Markdown

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
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mkd", ".mdown")


class _LinkAttributes(HTMLParser):
    """The href and src values of a page's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.values: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.values.update(v for k, v in attrs if k in ("href", "src") and v)


def rendered_links(text: str, markdown: Mapping[str, Any]) -> set[str]:
    """The href and src values of the HTML Markdown makes of `text`, with the site's
    named extensions (an extension object a plugin added may need a whole build).
    Whatever is code there, indented, in a footnote, a list or a definition, is not."""
    configs = dict(markdown.get("extension_configs", {}))
    names = [e for e in markdown.get("extensions", []) if isinstance(e, str)]
    names += [n for n in [*configs, "markdown.extensions.meta"] if n not in names]
    output_format = markdown.get("output_format", "html5")
    md = Markdown(extensions=names, extension_configs=configs, output_format=output_format)
    parser = _LinkAttributes()
    parser.feed(md.convert(text))
    parser.close()
    return parser.values


def links_in(text: str) -> list[tuple[int, str, str]]:
    """(line, kind, target) of each internal link written in Markdown source, outside
    fenced code and code spans; check_links keeps those the rendered page has."""
    found = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        m = FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker
            elif marker.startswith(fence[0]) and len(marker) >= len(fence):
                fence = None
            continue
        if fence is not None:
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
        links = links_in(text)
        if links and path.suffix in MARKDOWN_SUFFIXES:
            shown = rendered_links(text, content.settings.get("MARKDOWN", {}))
            links = [(n, k, v) for n, k, v in links if {f"{{{k}}}{v}", f"|{k}|{v}"} & shown]
        for number, kind, value in links:
            url_path = urlparse(unescape(value)).path
            if not _resolves(content, kind, url_path, context):
                raise ContentError(
                    path,
                    number,
                    f"dead link {{{kind}}}{value}: no post, page or static file has that path",
                )

"""Fail on an internal link whose target Pelican cannot find.

Pelican replaces ``{filename}``, ``{static}`` and ``{attach}`` links when it writes a
page, and for a target it cannot find it only logs a warning and leaves the raw
``{filename}...`` text in the href. This check runs once every generator has read
its files, resolves each such link the way Pelican does, and raises ContentError
with the line of the Markdown source that holds the link.
"""

from __future__ import annotations

import os
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


def _source_line(path: Path, kind: str, value: str) -> int:
    """The first line of the source that spells this link (1 if none does)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError:
        return 1
    needles = [f"{{{kind}}}{value}", f"|{kind}|{value}", value]
    for needle in needles:
        for number, text in enumerate(lines, start=1):
            if needle in text:
                return number
    return 1


def check_links(contents: Iterable[Any], context: Mapping[str, Any]) -> None:
    """Raise ContentError for the first dead intrasite link found in ``contents``."""
    for content in contents:
        html = getattr(content, "_content", None)
        if not html or not content.source_path:
            continue
        for match in content._get_intrasite_link_regex().finditer(html):
            kind = match.group("what")
            if kind not in CHECKED_KINDS:
                continue
            value = unescape(match.group("value"))
            url_path = urlparse(match.group("value")).path
            if _resolves(content, kind, url_path, context):
                continue
            path = Path(content.source_path)
            raise ContentError(
                path,
                _source_line(path, kind, value),
                f"dead link {{{kind}}}{value}: no post, page or static file has that path",
            )

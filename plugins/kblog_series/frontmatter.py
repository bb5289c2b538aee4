"""Read and check the metadata header of a Markdown post, keeping line numbers.

Pelican reads metadata with Python-Markdown's ``meta`` extension, which never
complains: a header it cannot read simply ends early and the rest turns into body
text, and a date it cannot parse makes Pelican log the file and skip it. This module
reads the same header the same way, but stops the build with the file and line.

The header rules are those of the ``meta`` extension: ``Key: value`` lines, an
optional ``---`` first line (then closed by ``---`` or ``...``), continuation lines
indented by four spaces, and the header ends at the first blank line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pelican.utils import get_date

from .errors import ContentError

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mkd", ".mdown"})

_KEY_LINE = re.compile(r"^[ ]{0,3}(?P<key>[A-Za-z0-9_-]+):\s*(?P<value>.*)$")
_MORE_LINE = re.compile(r"^[ ]{4,}(?P<value>.*)$")
_OPEN_LINE = re.compile(r"^-{3}(\s.*)?$")
_CLOSE_LINE = re.compile(r"^(-{3}|\.{3})(\s.*)?$")

# Keys that, seen just below the header, mean an author left a stray blank line.
KNOWN_KEYS = frozenset(
    {
        "title", "date", "modified", "tags", "category", "slug", "author", "authors",
        "summary", "status", "lang", "translation", "template", "save_as", "url",
        "series", "series_index",
    }
)  # fmt: skip
_DATE_KEYS = ("date", "modified")


@dataclass(frozen=True)
class Field:
    """One ``Key: value`` line; continuation lines are joined with newlines."""

    key: str
    value: str
    line: int


@dataclass
class FrontMatter:
    """The header of one file: its fields in order and the line it ends on."""

    path: Path
    fields: list[Field] = field(default_factory=list)
    last_line: int = 0

    def get(self, key: str) -> Field | None:
        """The first field called ``key`` (case-insensitive), if any."""
        key = key.lower()
        return next((f for f in self.fields if f.key == key), None)


def read_front_matter(path: Path) -> FrontMatter:
    """Read the header of ``path``, raising ContentError where it is malformed."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    matter = FrontMatter(path=path)
    if not lines or not lines[0].strip():
        raise ContentError(path, 1, "no metadata header: a post starts with 'Title: ...'")

    fenced = bool(_OPEN_LINE.match(lines[0]))
    number = 1 if fenced else 0
    while number < len(lines):
        text = lines[number]
        number += 1
        if fenced and _CLOSE_LINE.match(text):
            break
        if not text.strip():
            if fenced:
                raise ContentError(
                    path,
                    1,
                    f"metadata opened with '---' is not closed before the blank "
                    f"line {number}: end it with a '---' or '...' line",
                )
            break
        if not fenced and _CLOSE_LINE.match(text):
            break
        key_match = _KEY_LINE.match(text)
        if key_match:
            key = key_match["key"].lower()
            if matter.get(key) is not None:
                raise ContentError(path, number, f"'{key_match['key']}' is set twice")
            matter.fields.append(Field(key, key_match["value"].strip(), number))
            continue
        more = _MORE_LINE.match(text)
        if more and matter.fields:
            last = matter.fields[-1]
            matter.fields[-1] = Field(last.key, f"{last.value}\n{more['value'].strip()}", last.line)
            continue
        if not matter.fields:
            raise ContentError(path, number, "no metadata header: a post starts with 'Title: ...'")
        raise ContentError(
            path,
            number,
            "not a 'Key: value' metadata line; the header ends at the first "
            "blank line, so leave one between the metadata and the text",
        )
    else:
        if fenced:
            raise ContentError(path, 1, "metadata opened with '---' is never closed")
    matter.last_line = number
    _check_stray_metadata(path, lines, number)
    return matter


def _check_stray_metadata(path: Path, lines: list[str], header_end: int) -> None:
    """Fail when the first text line below the header is itself a known key."""
    for number in range(header_end + 1, len(lines) + 1):
        text = lines[number - 1]
        if not text.strip():
            continue
        key_match = _KEY_LINE.match(text)
        if key_match and key_match["key"].lower() in KNOWN_KEYS:
            raise ContentError(
                path,
                number,
                f"'{key_match['key']}:' looks like metadata but follows the "
                f"blank line that ended the header on line {header_end}",
            )
        return


def check_front_matter(path: Path) -> FrontMatter:
    """Read the header and check what Pelican would otherwise only log."""
    matter = read_front_matter(path)
    title = matter.get("title")
    if title is None or not title.value:
        raise ContentError(path, 1, "no 'Title:' in the metadata header")
    for key in _DATE_KEYS:
        date = matter.get(key)
        if date is None:
            continue
        try:
            get_date(date.value.replace("_", " "))
        except ValueError:
            raise ContentError(
                path,
                date.line,
                f"cannot read the {key} {date.value!r}; "
                "write it like 2024-05-01 or 2024-05-01 14:30",
            ) from None
    return matter


def check_sources(base: Path, relative_paths: set[str]) -> None:
    """Check the header of every Markdown file among ``relative_paths`` under ``base``."""
    for relative in sorted(relative_paths):
        path = base / relative
        if path.suffix.lower() in MARKDOWN_SUFFIXES:
            check_front_matter(path)

"""Group articles into the series named in the ``SERIES`` setting.

An article joins a series with two metadata lines::

    Series: kmod
    Series_index: 2

and then carries ``article.series``, a :class:`SeriesInfo` the theme reads for
"part 2 of 3" and the previous/next links. Every mistake stops the build with the
file and the line of the offending metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ContentError
from .frontmatter import read_front_matter


@dataclass(eq=False)
class SeriesInfo:
    """Where one article stands in its series."""

    slug: str
    name: str
    index: int
    total: int
    articles: list[Any] = field(repr=False)
    previous: Any = field(default=None, repr=False)
    next: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class _Member:
    article: Any
    slug: str
    index: int
    index_line: int


def _metadata_line(path: Path, key: str) -> int:
    """The line ``key`` is set on in ``path``'s header (1 when it cannot be found)."""
    found = read_front_matter(path).get(key)
    return found.line if found is not None else 1


def _member(article: Any, allowed: Mapping[str, str]) -> _Member | None:
    """Validate one article's series metadata; None when it is in no series."""
    path = Path(article.source_path)
    slug = article.metadata.get("series")
    raw_index = article.metadata.get("series_index")
    if slug is None:
        if raw_index is not None:
            raise ContentError(
                path,
                _metadata_line(path, "series_index"),
                "'Series_index' without 'Series': name the series too",
            )
        return None
    slug = str(slug).strip()
    if slug not in allowed:
        known = ", ".join(sorted(allowed)) or "none: the SERIES setting is empty"
        raise ContentError(
            path,
            _metadata_line(path, "series"),
            f"unknown series {slug!r} (known series: {known})",
        )
    if raw_index is None:
        raise ContentError(
            path,
            _metadata_line(path, "series"),
            f"in series {slug!r} but no 'Series_index: N' says which part it is",
        )
    index_line = _metadata_line(path, "series_index")
    try:
        index = int(str(raw_index).strip())
    except ValueError:
        index = 0
    if index < 1:
        raise ContentError(
            path, index_line, f"'Series_index' must be a whole number from 1, not {raw_index!r}"
        )
    return _Member(article, slug, index, index_line)


def collect_series(
    published: Iterable[Any], unpublished: Iterable[Any], allowed: Mapping[str, str]
) -> dict[str, list[Any]]:
    """Attach a SeriesInfo to each published series article; return the series.

    Drafts and hidden articles are checked the same way but are not counted:
    "part 2 of 3" only ever counts parts a reader can open.
    """
    for article in unpublished:
        if _member(article, allowed) is not None:
            article.series = None  # not counted, so no "part N of M" box either

    by_series: dict[str, dict[int, _Member]] = {}
    # In file-name order, so that of two parts with one number the later file is blamed.
    for article in sorted(published, key=lambda a: str(a.source_path)):
        member = _member(article, allowed)
        if member is None:
            continue
        parts = by_series.setdefault(member.slug, {})
        other = parts.get(member.index)
        if other is not None:
            raise ContentError(
                Path(article.source_path),
                member.index_line,
                f"part {member.index} of series {member.slug!r} is already "
                f"{Path(other.article.source_path).name}",
            )
        parts[member.index] = member

    result: dict[str, list[Any]] = {}
    for slug, parts in by_series.items():
        ordered = [parts[i] for i in sorted(parts)]
        for expected, member in enumerate(ordered, start=1):
            if member.index != expected:
                raise ContentError(
                    Path(member.article.source_path),
                    member.index_line,
                    f"series {slug!r} has no part {expected} before part {member.index}",
                )
        articles = [m.article for m in ordered]
        for position, member in enumerate(ordered):
            member.article.series = SeriesInfo(
                slug=slug,
                name=allowed[slug],
                index=member.index,
                total=len(ordered),
                articles=articles,
                previous=articles[position - 1] if position > 0 else None,
                next=articles[position + 1] if position + 1 < len(articles) else None,
            )
        result[slug] = articles
    return result

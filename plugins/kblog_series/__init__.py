"""kblog_series: series navigation and strict content checks for Pelican.

- Articles with ``Series:`` and ``Series_index:`` metadata get ``article.series``
  (a :class:`SeriesInfo`); the allowed series come from the ``SERIES`` setting,
  a mapping of series slug to display name.
- A malformed metadata header, an unknown series, a missing or duplicate part
  number, or a dead ``{filename}``/``{static}``/``{attach}`` link stops the build
  with :class:`ContentError`, whose message starts with ``file:line:``.

Each check can be turned off with a setting (all default to True):
``KBLOG_CHECK_FRONT_MATTER``, ``KBLOG_CHECK_LINKS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pelican import signals

from .errors import ContentError
from .frontmatter import check_front_matter, check_sources
from .links import check_links
from .series import SeriesInfo, collect_series

__all__ = ["ContentError", "SeriesInfo", "check_front_matter", "register"]


def _check_generator_sources(generator: Any, paths_key: str, excludes_key: str) -> None:
    settings = generator.settings
    if not settings.get("KBLOG_CHECK_FRONT_MATTER", True):
        return
    files = generator.get_files(settings[paths_key], exclude=settings[excludes_key])
    check_sources(Path(generator.path), files)


def check_article_sources(generator: Any) -> None:
    """Check every article's metadata header before Pelican reads (and forgives) it."""
    _check_generator_sources(generator, "ARTICLE_PATHS", "ARTICLE_EXCLUDES")


def check_page_sources(generator: Any) -> None:
    """Check every page's metadata header before Pelican reads it."""
    _check_generator_sources(generator, "PAGE_PATHS", "PAGE_EXCLUDES")


def attach_series(generator: Any) -> None:
    """Give series articles their ``series`` navigation data."""
    allowed = generator.settings.get("SERIES", {})
    unpublished = [*generator.drafts, *generator.hidden_articles]
    generator.context["kblog_series"] = collect_series(generator.articles, unpublished, allowed)


def check_all_links(generators: list[Any]) -> None:
    """Once every generator has read its files, fail on any dead internal link."""
    if not generators or not generators[0].settings.get("KBLOG_CHECK_LINKS", True):
        return
    attributes = (
        "articles", "translations", "drafts", "drafts_translations", "hidden_articles",
        "hidden_translations", "pages", "hidden_pages", "draft_pages", "draft_translations",
    )  # fmt: skip
    contents = [c for g in generators for name in attributes for c in getattr(g, name, [])]
    check_links(contents, generators[0].context)


def register() -> None:
    """Connect the plugin to Pelican's signals."""
    signals.article_generator_init.connect(check_article_sources)
    signals.page_generator_init.connect(check_page_sources)
    signals.article_generator_finalized.connect(attach_series)
    signals.all_generators_finalized.connect(check_all_links)

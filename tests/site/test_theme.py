"""The article template's slots for the snippets plugin, rendered with stand-in data."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from htmltree import parse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Undefined
from sitebuild import ROOT

TEMPLATES = ROOT / "theme" / "templates"


def render(article: Any, undefined: type[Undefined] = Undefined) -> str:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=undefined,
    )
    return env.get_template("article.html").render(
        article=article,
        SITENAME="kblog",
        SITEURL="",
        SITESUBTITLE="",
        THEME_STATIC_DIR="theme",
        FEED_ALL_ATOM="feeds/all.atom.xml",
        FEED_DOMAIN="",
        ARCHIVES_URL="archives.html",
        TAGS_URL="tags.html",
        DEFAULT_LANG="en",
        pages=[],
    )


def stand_in(**extra: Any) -> SimpleNamespace:
    date = datetime(2026, 1, 2, tzinfo=UTC)
    fields: dict[str, Any] = dict(
        title="A post", url="a-post.html", date=date, locale_date="2 January 2026",
        modified=None, summary="<p>Short.</p>", content="<p>Body.</p>", tags=[],
        category=None, series=None, kblog_provenance=None, kblog_reproduce=None,
        kblog_differences=None,
    )  # fmt: skip
    fields.update(extra)
    return SimpleNamespace(**fields)


def test_slots_are_absent_without_data() -> None:
    page = parse(render(stand_in()))
    for cls in ("kb-provenance", "kb-reproduce", "kb-differences", "kb-series"):
        assert not page.find_all(cls=cls), cls


def test_provenance_line_is_the_themes_template() -> None:
    from kblog_snippets import views

    provenance = views.provenance(
        [
            {"kernel": "6.1.0-56-amd64", "kernel_package": "6.1.158-1", "qemu": "7.2.22",
             "accel": "tcg", "captured_at": "2026-12-04T16:00:00"},
            {"kernel": "6.12.107+deb12-amd64", "kernel_package": "6.12.107-1~deb12u1",
             "qemu": "7.2.22", "accel": "tcg", "captured_at": "2026-12-04T16:01:00"},
        ],
        "0123456789abcdef",
    )  # fmt: skip
    page = parse(render(stand_in(kblog_provenance=provenance)))
    (line,) = page.find_all("p", "kb-provenance")
    assert " ".join(line.text().split()) == (
        "Every output on this page was captured on Linux 6.1.0-56-amd64 (Debian 6.1.158-1) "
        "and Linux 6.12.107+deb12-amd64 (Debian 6.12.107-1~deb12u1) under QEMU 7.2.22 "
        "with TCG, from kmod/ 0123456789ab, on 2026-12-04."
    )


def test_reproduce_box() -> None:
    reproduce = {
        "commands": ["tar xf ep2.tar.gz", "cd ep2 && ./run.sh <post>"],
        "bundle_url": "/bundles/ep2.tar.gz",
    }
    page = parse(render(stand_in(kblog_reproduce=reproduce)))
    (box,) = page.find_all("section", "kb-reproduce")
    assert "Reproduce this post" in box.text()
    (link,) = [a for a in box.find_all("a") if a.attrs.get("href") == "/bundles/ep2.tar.gz"]
    assert "download" in link.attrs
    code = box.find_all("code")[-1]
    assert code.text() == "$ tar xf ep2.tar.gz\n$ cd ep2 && ./run.sh <post>\n"
    assert len(code.find_all("span", "gp")) == 2  # so the copy button copies the commands


def test_differences_summary_links_to_steps() -> None:
    differences = [{"step_id": "step-7", "label": "ps shows the task's state"}]
    page = parse(render(stand_in(kblog_differences=differences)))
    (box,) = page.find_all("aside", "kb-differences")
    (link,) = box.find_all("a")
    assert link.attrs["href"] == "#step-7"
    assert link.text() == "ps shows the task's state"


@pytest.mark.parametrize("undefined", [Undefined, StrictUndefined])
def test_a_post_outside_any_series_renders(undefined: type[Undefined]) -> None:
    assert "Body." in render(stand_in(), undefined)

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
        kblog_differences=None, kblog_replay=None,
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


def test_provenance_names_the_kernels_the_post_built_and_links_the_patch() -> None:
    """Each built kernel: its release, source package and version, the patch and the
    fragment with their digests; links only where a repository URL is set."""
    from kblog_snippets import views

    built = {
        "release": "6.12.118-kblog", "source_package": "linux-source-6.12",
        "source_version": "6.12.118-1~deb12u1", "patch": "syscall/kblog_hello-6.12.patch",
        "patch_sha256": "ab" * 32, "fragment": "kernel/guest.config", "fragment_sha256": "cd" * 32,
    }  # fmt: skip
    runs = [
        {"kernel": "6.12.107+deb12-amd64", "kernel_package": "6.12.107-1~deb12u1",
         "qemu": "7.2.22", "accel": "tcg", "captured_at": "2026-12-05T08:00:00", "built": built},
    ]  # fmt: skip
    unlinked = parse(render(stand_in(kblog_provenance=views.provenance(runs, "0123456789ab"))))
    (line,) = unlinked.find_all("p", "kb-provenance")
    assert " ".join(line.text().split()).endswith(
        "on 2026-12-05. The post built and booted Linux 6.12.118-kblog, from linux-source-6.12 "
        "6.12.118-1~deb12u1 with kmod/syscall/kblog_hello-6.12.patch (sha256 abababababab) "
        "and kernel/guest.config (sha256 cdcdcdcdcdcd)."
    )
    assert not line.find_all("a")
    url = "https://git.example.org/kblog/blob/main"
    linked = parse(render(stand_in(kblog_provenance=views.provenance(runs, "0", url + "/"))))
    (line,) = linked.find_all("p", "kb-provenance")
    assert [a.attrs["href"] for a in line.find_all("a")] == [
        f"{url}/kmod/syscall/kblog_hello-6.12.patch",
        f"{url}/kernel/guest.config",
    ]
    # A kernel whose .config also carries a fragment its post's steps added.
    built["fragment"] += " kernel/debug.config"
    built["fragment_sha256"] += " " + "ef" * 32
    both = parse(render(stand_in(kblog_provenance=views.provenance(runs, "0"))))
    (line,) = both.find_all("p", "kb-provenance")
    assert " ".join(line.text().split()).endswith(
        "and kernel/guest.config (sha256 cdcdcdcdcdcd) plus kernel/debug.config "
        "(sha256 efefefefefef)."
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


# --- the real pages: real captures rendered by Pelican through the theme -------------


def _text(node) -> str:
    return " ".join(node.text().split())


def test_every_block_of_a_real_page_is_its_capture_through_the_template(built_site) -> None:
    """Episode 2 built by Pelican from snippets/: one kb-step per executed block, each
    kernel's panel shows that kernel's captured outputs and the events its log holds,
    and the provenance line names the releases the captures were made on."""
    from kblog_snippets.views import badges

    from kblog.parse import read_post
    from runner import freeze
    from runner.config import ROOT as REPO

    post = read_post(REPO / "content" / "ep2-kernel-segfaults.md", "content/ep2.md")
    stored = freeze.load(REPO / "snippets" / "ep2-kernel-segfaults.json")
    page = parse((built_site / "kernel-segfaults.html").read_text())
    blocks = page.find_all("div", "kb-step")
    assert [b.attrs["id"] for b in blocks] == [f"step-{n + 1}" for n in range(len(post.blocks))]
    index = 0
    for block, html in zip(post.blocks, blocks, strict=True):
        steps = range(index, index + len(block.steps))
        index += len(block.steps)
        for label, entry in stored.items():
            (panel,) = [
                p for p in html.find_all("div", "kb-kpanel") if p.attrs["data-kernel"] == label
            ]
            (term,) = panel.find_all("pre", "kb-term")
            for n in steps:
                output = entry.result.steps[n].output.rstrip("\n")
                if output and entry.result.steps[n].status != "not-run":
                    assert output.split("\n")[-1].strip() in term.text(), (label, n)
            shown = [b.text() for b in panel.find_all("span", "kb-badge")]
            assert shown == [b["label"] for b in badges([entry.result.steps[n] for n in steps])]
    (line,) = page.find_all("p", "kb-provenance")
    for label, entry in stored.items():
        assert f"Linux {entry.result.provenance.kernel} " in _text(line), label

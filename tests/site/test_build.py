"""The real content built with the real theme: structure a reader relies on."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from htmltree import Element, ids, parse

EP1 = "first-kernel-module.html"
EP2 = "kernel-segfaults.html"
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
ATOM = "{http://www.w3.org/2005/Atom}"


def pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_both_episodes_and_the_list_pages_are_built(built_site: Path) -> None:
    for name in (EP1, EP2, "index.html", "archives.html", "tags.html", "categories.html"):
        assert (built_site / name).is_file(), name


def test_404_page_exists_and_uses_site_absolute_assets(built_site: Path) -> None:
    page = parse(built_site / "404.html")
    stylesheets = [
        e.attrs["href"] for e in page.find_all("link") if "stylesheet" in e.attrs.get("rel", "")
    ]
    assert stylesheets, "404 page has no stylesheet"
    # Served at any depth, so no relative asset paths.
    assert all(href.startswith("/") for href in stylesheets), stylesheets
    assert "No page at this address" in page.text()


def test_atom_feed_lists_both_episodes(built_site: Path) -> None:
    feed = ET.parse(built_site / "feeds" / "all.atom.xml").getroot()
    assert feed.tag == f"{ATOM}feed"
    titles = {e.findtext(f"{ATOM}title") for e in feed.iter(f"{ATOM}entry")}
    assert {"Your first kernel module", "Kernel segfaults for fun (but no profit)"} <= titles
    page = parse(built_site / EP1)
    alternates = [e for e in page.find_all("link") if e.attrs.get("type") == "application/atom+xml"]
    assert alternates and alternates[0].attrs["href"].endswith("feeds/all.atom.xml")


@pytest.mark.parametrize("name", [EP1, EP2])
def test_footnotes_link_both_ways(built_site: Path, name: str) -> None:
    page = parse(built_site / name)
    anchors = ids(page)
    refs = page.find_all("a", "footnote-ref")
    assert refs, f"{name} has no footnotes"
    by_id = {e.attrs["id"]: e for e in page.iter() if "id" in e.attrs}
    for ref in refs:
        target = ref.attrs["href"].removeprefix("#")
        assert target in anchors, f"footnote link to missing #{target}"
        backrefs = by_id[target].find_all("a", "footnote-backref")
        assert backrefs, f"footnote #{target} has no link back"
        back = backrefs[0].attrs["href"].removeprefix("#")
        assert back in anchors, f"back-link to missing #{back}"
        # The back-link returns to the very reference that led here.
        assert ref in list(by_id[back].iter()), (back, target)


def _series_box(page: Element) -> Element:
    boxes = page.find_all("nav", "kb-series")
    assert len(boxes) == 1
    return boxes[0]


def test_series_navigation_part_1(built_site: Path) -> None:
    page = parse(built_site / EP1)
    box = _series_box(page)
    assert "Part 1 of 4" in box.text()
    assert "Writing Linux kernel modules" in box.text()
    nav = page.find_all("nav", "kb-series-nav")[0]
    assert not nav.find_all("a", "kb-prev")
    (nxt,) = nav.find_all("a", "kb-next")
    assert nxt.attrs["href"] == f"/{EP2}"
    current = [li for li in box.find_all("li") if li.attrs.get("aria-current") == "page"]
    assert [li.text().strip() for li in current] == ["Your first kernel module"]


def test_series_navigation_part_2(built_site: Path) -> None:
    page = parse(built_site / EP2)
    assert "Part 2 of 4" in _series_box(page).text()
    nav = page.find_all("nav", "kb-series-nav")[0]
    (nxt,) = nav.find_all("a", "kb-next")
    assert nxt.attrs["href"] == "/system-call.html"
    (prev,) = nav.find_all("a", "kb-prev")
    assert prev.attrs["href"] == f"/{EP1}"
    assert "Your first kernel module" in prev.text()


def test_series_navigation_part_3(built_site: Path) -> None:
    page = parse(built_site / "system-call.html")
    assert "Part 3 of 4" in _series_box(page).text()
    nav = page.find_all("nav", "kb-series-nav")[0]
    (nxt,) = nav.find_all("a", "kb-next")
    assert nxt.attrs["href"] == "/looking-inside.html"
    (prev,) = nav.find_all("a", "kb-prev")
    assert prev.attrs["href"] == f"/{EP2}"


def test_series_navigation_part_4(built_site: Path) -> None:
    page = parse(built_site / "looking-inside.html")
    assert "Part 4 of 4" in _series_box(page).text()
    nav = page.find_all("nav", "kb-series-nav")[0]
    assert not nav.find_all("a", "kb-next")
    (prev,) = nav.find_all("a", "kb-prev")
    assert prev.attrs["href"] == "/system-call.html"


def test_episode_3_names_the_kernels_it_built_on_each_tab(built_site: Path) -> None:
    """Each series built from its own Debian source, with its own patch: the page's
    provenance line names both built kernels and what they were built from."""
    from runner import config

    page = parse(built_site / "system-call.html")
    (line,) = page.find_all("p", "kb-provenance")
    text = " ".join(line.text().split())
    for label, k in config.KERNELS.items():
        assert f"Linux {k.release} (Debian " in text
        assert f"{k.source_package} {k.source} with kmod/syscall/kblog_hello-{label}.patch" in text
    assert text.count("kernel/guest.config (sha256 ") == len(config.KERNELS)
    assert "debug.config" not in text


def test_episode_4_credits_the_debug_fragment_its_steps_added(built_site: Path) -> None:
    """Episode 4's kernels carry kernel/debug.config too: the page says so, with its digest."""
    import hashlib

    from runner import config

    digest = hashlib.sha256((config.KERNEL_DIR / "debug.config").read_bytes()).hexdigest()
    page = parse(built_site / "looking-inside.html")
    (line,) = page.find_all("p", "kb-provenance")
    text = " ".join(line.text().split())
    credit = f") plus kernel/debug.config (sha256 {digest[:12]})"
    assert text.count(credit) == len(config.KERNELS), text


def test_code_blocks_are_highlighted_by_pygments(built_site: Path) -> None:
    page = parse(built_site / EP2)
    blocks = page.find_all(cls="highlight")
    assert len(blocks) >= 10
    c_block = next(b for b in blocks if "chardev_fops" in b.text())
    token_classes = {c for e in c_block.iter() for c in e.classes}
    assert {"k", "n", "p"} <= token_classes, token_classes  # keyword, name, punctuation
    prompts = [e for b in blocks for e in b.find_all("span", "gp")]
    assert prompts, "no console prompt was highlighted"
    css = (built_site / "theme" / "css" / "pygments.css").read_text()
    assert ".highlight .k " in css and "prefers-color-scheme: dark" in css


def test_episode_3_is_announced_without_a_link(built_site: Path) -> None:
    page = parse(built_site / EP2)
    body = page.find_all("div", "post-body")[0]
    mentions = [
        e
        for e in body.iter()
        if "implementing a" in "".join(c for c in e.children if isinstance(c, str))
    ]
    assert mentions, "episode 3 is not announced"
    for element in mentions:
        assert all(a.tag != "a" for a in [element, *element.ancestors()])


def test_no_external_scripts_styles_or_fonts(built_site: Path) -> None:
    loaders = {
        "script": "src",
        "img": "src",
        "iframe": "src",
        "source": "src",
        "audio": "src",
        "video": "src",
        "embed": "src",
        "object": "data",
    }
    for path in pages(built_site):
        for element in parse(path).iter():
            if element.tag in loaders:
                url = element.attrs.get(loaders[element.tag], "")
                assert not EXTERNAL.match(url), f"{path.name}: <{element.tag}> loads {url}"
            if element.tag == "link" and element.attrs.get("rel") != "alternate":
                url = element.attrs.get("href", "")
                assert not EXTERNAL.match(url), f"{path.name}: <link> loads {url}"
            if element.tag == "style":
                assert "url(" not in element.text() and "@import" not in element.text()
            assert "style" not in element.attrs or "url(" not in element.attrs["style"]
    for css in built_site.rglob("*.css"):
        text = css.read_text()
        assert "@import" not in text, css.name
        assert not re.search(r"url\(\s*['\"]?(?:[a-z]+:|//)", text), css.name
    for js in built_site.rglob("*.js"):
        text = js.read_text()
        if js.name == "asciinema-player.min.js":
            # Names, not requests: SVG's XML namespace, and the base its URL parsing
            # falls back on outside a page (the browser tests watch its requests).
            for name in ("http://www.w3.org/2000/svg", 'location?.href??"http://localhost/"'):
                assert name in text, f"the player changed: is {name!r} still no request?"
                text = text.replace(name, "")
        assert not re.search(r"https?://", text), js.name


def _internal_target(site: Path, page: Path, url: str) -> tuple[Path, str] | None:
    """The file and fragment an internal URL points to, or None for external ones."""
    if not url or EXTERNAL.match(url):
        return None
    parts = urlsplit(url)
    if parts.path.startswith("/"):
        target = site / unquote(parts.path).lstrip("/")
    elif parts.path:
        target = page.parent / unquote(parts.path)
    else:
        target = page
    if target.is_dir() or parts.path.endswith("/"):
        target = target / "index.html"
    return target.resolve(), parts.fragment


def test_no_dead_internal_links_or_anchors(built_site: Path) -> None:
    site = built_site.resolve()
    anchors: dict[Path, set[str]] = {}
    problems = []
    checked = 0
    for path in pages(site):
        for element in parse(path).iter():
            for attr in ("href", "src"):
                found = _internal_target(site, path, element.attrs.get(attr, ""))
                if found is None:
                    continue
                checked += 1
                target, fragment = found
                if not target.is_file():
                    problems.append(f"{path.relative_to(site)}: {attr}={element.attrs[attr]}")
                    continue
                if fragment and target.suffix == ".html":
                    if target not in anchors:
                        anchors[target] = ids(parse(target))
                    if unquote(fragment) not in anchors[target]:
                        problems.append(
                            f"{path.relative_to(site)}: {attr}={element.attrs[attr]} (no anchor)"
                        )
    assert checked > 50
    assert not problems, "\n".join(problems)


def test_no_unreplaced_intrasite_links(built_site: Path) -> None:
    for path in pages(built_site):
        assert "{filename}" not in path.read_text(), path.name

"""The real site's replays and execution report, as the build writes them."""

from __future__ import annotations

import json
from pathlib import Path

from htmltree import parse
from sitebuild import ROOT

from kblog import report
from runner import config, freeze

POSTS = ("ep1-first-module", "ep2-kernel-segfaults", "ep3-system-call", "ep4-looking-inside")


def test_the_player_comes_from_npm_into_the_theme(built_site: Path) -> None:
    copied = built_site / "theme" / "asciinema-player"
    for name in ("asciinema-player.min.js", "asciinema-player.css"):
        source = ROOT / "node_modules" / "asciinema-player" / "dist" / "bundle" / name
        assert (copied / name).read_bytes() == source.read_bytes()
    lock = json.loads((ROOT / "package-lock.json").read_text())
    player = lock["packages"]["node_modules/asciinema-player"]
    assert (player["version"], player["license"]) == ("3.18.0", "Apache-2.0")


def test_episode_2_replays_every_session_on_every_kernel(built_site: Path) -> None:
    page = (built_site / "kernel-segfaults.html").read_text()
    tree = parse(built_site / "kernel-segfaults.html")
    (section,) = tree.find_all("section", "kb-replay")
    assert section.attrs["data-post"] == "ep2-kernel-segfaults"
    notes = section.find_all("p", "kb-replay-note")
    assert len(notes) == len(config.KERNELS)
    assert all("TCG" in n.text() or "KVM" in n.text() for n in notes)
    for kernel in config.KERNELS:
        for session in ("build", "term1", "py"):
            cast = built_site / "replay" / "ep2-kernel-segfaults" / kernel / f"{session}.cast"
            header = json.loads(cast.read_text().splitlines()[0])
            assert header["version"] == 2
            assert f'/replay/ep2-kernel-segfaults/{kernel}/{session}.cast"' in page
    # No request leaves the page: every script and style is the site's own.
    for element in tree.find_all("script") + tree.find_all("link"):
        url = element.attrs.get("src") or element.attrs.get("href") or ""
        assert "://" not in url, url
    # Each executed block can be watched; the link shows only with the script.
    watch = tree.find_all("a", "kb-watch")
    assert watch and all("hidden" in a.attrs for a in watch)


def test_the_report_lists_every_post_and_kernel(built_site: Path) -> None:
    tree = parse(built_site / "report.html")
    rows = tree.find_all("tr", "kb-report-row")
    shown = {h.text() for h in tree.find_all("h2")}
    assert {f"content/{post}.md" for post in POSTS} <= shown
    assert len(rows) == len(POSTS) * len(config.KERNELS)
    assert {r.attrs["data-state"] for r in rows} == {"fresh"}
    assert {r.attrs["data-kernel"] for r in rows} == set(config.KERNELS)
    text = tree.text()
    assert "The slowest steps of the series" in text
    assert "page-fault" in text  # episode 2's oops, among the kernel events
    # Linked from every page's footer.
    for page in ("index.html", "kernel-segfaults.html"):
        links = parse(built_site / page).find_all("a", "kb-report-link")
        assert [a.attrs["href"] for a in links] == ["/report.html"]


def test_recordings_stay_within_their_budget() -> None:
    """The whole series' recordings add at most 1 MB to snippets/ (gzipped, base64)."""
    total = 0
    for post in POSTS:
        path = ROOT / "snippets" / f"{post}.json"
        for label, stored in json.loads(path.read_text())["kernels"].items():
            recordings = stored["result"]["recordings"]
            assert recordings, f"{path}: kernel {label} has no recordings"
            total += sum(len(r["events"]) for r in recordings.values())
        assert freeze.load(path)  # and they read back
    print(f"recordings in snippets/: {total:,} bytes")
    assert total <= 1_000_000


def test_report_rows_read_back(tmp_path: Path) -> None:
    row = report.Row("content/a.md", "6.1", "drifted", "step 1: changed")
    row.steps.append(report.StepTime(1, "term1", "guest", "ls", 0.5, "ok"))
    row.events.append(report.EventRow(1, "Oops", "Oops: 0000 [#1]"))
    assert report.from_json(json.loads(json.dumps(report.to_json([row])))) == [row]
    html = tmp_path / "r.html"
    report.write(html, [row], ROOT / "theme" / "templates")
    tree = parse(html)
    assert [r.attrs["data-state"] for r in tree.find_all("tr", "kb-report-row")] == ["drifted"]
    assert "step 1: changed" in tree.text() and "Oops: 0000 [#1]" in tree.text()

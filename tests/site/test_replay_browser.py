"""Episode 2's replay in Debian's Chromium, through the real built page: over http and
from file://, the player loads and plays, a block's "Watch" link jumps to its step,
and with JavaScript off the page still reads in full."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sitebuild import build
from test_browser import CHROMIUM, LAUNCH_ARGS, _serve

pytestmark = [pytest.mark.browser]

PAGE = "kernel-segfaults.html"


@pytest.fixture(scope="module")
def http_url(built_site: Path) -> Iterator[str]:
    server, url = _serve(built_site)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def file_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built to be opened from disk: RELATIVE_URLS is off, so its links are
    absolute, and SITEURL is the output directory's file:// address."""
    output = tmp_path_factory.mktemp("file-site") / "output"
    return build(OUTPUT_PATH=str(output), SITEURL=output.as_uri())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def _open(browser: Any, url: str, **options: Any) -> tuple[Any, list[str]]:
    """The page, and the requests it made that did not stay on its own site."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    origin = url.rsplit("/", 1)[0]
    outside: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((origin, "data:", "blob:")) else outside.append(r.url),
    )
    page.goto(url)
    page.wait_for_selector("#kb-replay .ap-wrapper", state="attached", timeout=15_000)
    assert errors == [], errors
    return page, outside


def _replay_time(page: Any) -> float:
    return float(page.get_attribute("#kb-replay", "data-time") or 0)


def _watch(page: Any, session: str, text: str) -> tuple[str, float]:
    """Click the Watch link of the block that types `text` in `session`; its step and
    where the replay says that step starts."""
    block = page.locator(f".kb-step[data-session='{session}']", has_text=text).first
    step = block.get_attribute("data-step")
    post = page.get_attribute("#kb-replay", "data-post")
    starts = page.evaluate(
        "([post, step]) => { const r = window.kblogReplay[post];"
        " return Object.keys(r).map(k => r[k].steps[step]); }",
        [post, step],
    )
    block.locator("a.kb-watch").first.click()
    kernel = page.get_attribute("#kb-replay", "data-kernel")
    kernels = page.evaluate("(post) => Object.keys(window.kblogReplay[post])", post)
    where = starts[kernels.index(kernel)]
    assert where[0] == session
    return step, float(where[1])


def _check_replay(page: Any) -> None:
    # The player is there, on the session of the post's first step.
    first = page.evaluate(
        "(post) => { const r = window.kblogReplay[post];"
        " return r[Object.keys(r)[0]].steps['1'][0]; }",
        page.get_attribute("#kb-replay", "data-post"),
    )
    assert page.get_attribute("#kb-replay", "data-session") == first
    assert page.locator("#kb-replay .kb-replay-controls").is_visible()
    # The block that hangs: its link jumps to its step, in the Python session, and plays.
    step, start = _watch(page, "py", "Stuck for good")
    assert page.get_attribute("#kb-replay", "data-session") == "py"
    page.wait_for_function(
        f"Number(document.querySelector('#kb-replay').dataset.time) > {start + 0.3}",
        timeout=15_000,
    )
    assert start - 0.05 <= _replay_time(page) < start + 5
    # Following the post, the replay moves on to the shell that removes the module
    # while the read hangs, and marks that step's block on the page.
    page.wait_for_function(
        "document.querySelector('#kb-replay').dataset.session === 'term1'", timeout=20_000
    )
    # The switched player draws its terminal a moment later: wait for the line.
    page.wait_for_function(
        "(document.querySelector('#kb-replay .ap-term') || {}).innerText?.includes('$ sudo ')",
        timeout=10_000,
    )
    playing = page.locator(".kb-step.kb-playing")
    assert playing.count() == 1
    assert int(playing.get_attribute("data-step") or 0) > int(step)


def test_replay_over_http(browser: Any, http_url: str) -> None:
    page, outside = _open(browser, f"{http_url}/{PAGE}")
    _check_replay(page)
    assert outside == []
    page.context.close()


def test_replay_from_file(browser: Any, file_site: Path) -> None:
    page, outside = _open(browser, (file_site / PAGE).as_uri())
    _check_replay(page)
    assert outside == []
    page.context.close()


def test_without_javascript_the_page_reads_in_full(
    browser: Any, http_url: str, built_site: Path
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{http_url}/{PAGE}")
    # The captures are the text: the read that hangs is there, in its block.
    assert page.locator(".kb-step[data-session='py']", has_text="f.read()").first.is_visible()
    assert page.locator("a.kb-watch:visible").count() == 0
    assert page.locator("#kb-replay .kb-replay-controls").is_hidden()
    assert "needs JavaScript" in page.locator("#kb-replay").inner_text()
    # The recordings stay reachable, as files any asciinema player reads.
    links = page.locator("#kb-replay .kb-replay-files a")
    assert links.count() >= 3
    for n in range(links.count()):
        href = links.nth(n).get_attribute("href") or ""
        header = json.loads((built_site / href.lstrip("/")).read_text().splitlines()[0])
        assert header["version"] == 2
    context.close()

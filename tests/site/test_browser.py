"""The built pages in a real browser: footnotes, kernel logs, copy buttons, both themes.

Uses Debian's chromium through Playwright's Python client (never a downloaded
browser). Screenshots go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from blockhtml import render_block
from sitebuild import ROOT, build_tiny

from runner.scenario import KernelEvent, Status, Step, StepResult

# Debian's chromium (`make test` installs it, runner/host-packages.txt): a missing
# browser fails.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser]

# The markup the snippets plugin gives an executed step, in a post of its own,
# so that this test does not depend on captures or on that plugin being present.


def _result(index: int, text: str, output: str, **kw: Any) -> StepResult:
    return StepResult(
        index, kw.pop("status", Status.OK), "$ ", text, output, 0, 0.06, "guest", **kw
    )


def _step_html() -> str:
    """A block as the snippets plugin renders it (its own renderer, not a copy): two
    commands, an oops in the kernel log, and the status of a step that hangs."""
    steps = [
        Step("term1", "console", "sudo insmod chardev.ko", block=2),
        Step("term1", "console", "sudo dmesg | tail -n 1", block=2),
    ]
    klog = [
        "[    9.135028] BUG: unable to handle page fault for address: ffffffffc034b1d0",
        "[    9.135679] Oops: 0000 [#1] PREEMPT SMP NOPTI",
    ]
    events = [KernelEvent("page-fault", klog[0][15:]), KernelEvent("Oops", klog[1][15:])]
    results = [
        _result(0, steps[0].input, ""),
        _result(
            1, steps[1].input, "[    6.204794] chardev: got major 245",
            status=Status.HANG, kernel_log=klog, events=events,
        ),
    ]  # fmt: skip
    return render_block(steps, {"6.1": results})


def _multi_html() -> str:
    """A block captured on two kernels: one panel each behind radio-button tabs."""
    step = Step("term1", "console", "ps -o pid,stat,cmd -C python3", block=8)
    per_kernel = {
        "6.1": [_result(0, step.input, "  PID STAT CMD\n  126 Xs+  [python3]")],
        "6.12": [_result(0, step.input, "  PID STAT CMD\n  131 Xs+  [python3] (6.12)")],
    }
    return render_block([step], per_kernel)


STEP_HTML = _step_html()
MULTI_HTML = _multi_html()

DEMO_POST = f"""\
Title: Steps demo
Date: 2026-01-01
Slug: steps-demo

A step as the snippets plugin renders it.[^note]

{STEP_HTML}

A console block that is only highlighted:

```console
$ echo one
one
$ uname -r
6.1.0-56-amd64
```

{MULTI_HTML}

```pycon
>>> x = 1
>>> if x:
...     print("yes")
...
yes
```

[^note]: A footnote, to follow there and back.
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def real_site_url(built_site: Path) -> Iterator[str]:
    server, url = _serve(built_site)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def demo_site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    content = tmp_path_factory.mktemp("demo") / "content"
    content.mkdir()
    (content / "steps-demo.md").write_text(DEMO_POST)
    server, url = _serve(build_tiny(content))
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def _page(browser: Any, origin: str, scheme: str = "light", **options: Any) -> Any:
    context = browser.new_context(color_scheme=scheme, **options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    return context.new_page()


def _shot(page: Any, name: str, **options: Any) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path


def test_footnote_there_and_back(browser: Any, real_site_url: str) -> None:
    page = _page(browser, real_site_url, viewport={"width": 1000, "height": 800})
    page.goto(f"{real_site_url}/kernel-segfaults.html")
    ref = page.locator("a.footnote-ref").first
    target = ref.get_attribute("href")
    assert target and target.startswith("#fn")
    ref.click()
    assert page.evaluate("location.hash") == target
    note = page.locator(f"li[id='{target[1:]}']")
    assert note.is_visible()
    assert note.evaluate("el => el.matches(':target')")
    note.locator("a.footnote-backref").click()
    back = page.evaluate("location.hash")
    assert back.startswith("#fnref")
    assert page.locator(f"[id='{back[1:]}']").is_visible()
    page.context.close()


def test_kernel_log_is_collapsed_until_opened(browser: Any, demo_site_url: str) -> None:
    page = _page(browser, demo_site_url)
    page.goto(f"{demo_site_url}/steps-demo.html")
    details = page.locator(".kb-step details.kb-klog")
    log = details.locator("pre")
    assert details.evaluate("el => el.open") is False
    assert not log.is_visible()
    details.locator("summary").click()
    assert details.evaluate("el => el.open") is True
    assert log.is_visible()
    assert "BUG: unable to handle page fault" in log.inner_text()
    badge = page.locator(".kb-badge-oops").first
    color = badge.evaluate("el => getComputedStyle(el).color")
    red, green, blue = (int(c) for c in color[color.index("(") + 1 : -1].split(",")[:3])
    assert red > 2 * green and red > 2 * blue, color
    page.context.close()


def test_step_copy_button_copies_only_the_commands(browser: Any, demo_site_url: str) -> None:
    page = _page(browser, demo_site_url)
    page.goto(f"{demo_site_url}/steps-demo.html")
    button = page.locator("#step-3 .kb-copy")
    assert button.is_visible()  # hidden in the HTML, shown by the script
    button.click()
    page.wait_for_function("document.querySelector('#step-3 .kb-copy').textContent === 'Copied'")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "sudo insmod chardev.ko\nsudo dmesg | tail -n 1"
    page.context.close()


def test_plain_console_blocks_get_a_copy_button(browser: Any, demo_site_url: str) -> None:
    page = _page(browser, demo_site_url)
    page.goto(f"{demo_site_url}/steps-demo.html")
    buttons = page.locator(".post-body > .highlight > .kb-copy")
    assert buttons.count() == 2
    buttons.nth(0).click()
    page.wait_for_function(
        "document.querySelectorAll('.highlight > .kb-copy')[0].textContent === 'Copied'"
    )
    assert page.evaluate("navigator.clipboard.readText()") == "echo one\nuname -r"
    buttons.nth(1).click()
    page.wait_for_function(
        "document.querySelectorAll('.highlight > .kb-copy')[1].textContent === 'Copied'"
    )
    assert page.evaluate("navigator.clipboard.readText()") == 'x = 1\nif x:\n    print("yes")\n'
    page.context.close()


def test_copy_falls_back_without_the_clipboard_api(browser: Any, demo_site_url: str) -> None:
    page = _page(browser, demo_site_url)
    page.add_init_script(
        """
        Object.defineProperty(Navigator.prototype, "clipboard", { get: () => undefined });
        document.execCommand = function (command) {
          window.__kbCopied = command === "copy" ? document.activeElement.value : null;
          return true;
        };
        """
    )
    page.goto(f"{demo_site_url}/steps-demo.html")
    page.locator("#step-3 .kb-copy").click()
    page.wait_for_function("document.querySelector('#step-3 .kb-copy').textContent === 'Copied'")
    assert page.evaluate("window.__kbCopied") == "sudo insmod chardev.ko\nsudo dmesg | tail -n 1"
    page.context.close()


def test_kernel_tabs_switch_panels_without_script(browser: Any, demo_site_url: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{demo_site_url}/steps-demo.html")
    first, second = (
        page.locator("#step-9 .kb-kpanel.kb-k1"),
        page.locator("#step-9 .kb-kpanel.kb-k2"),
    )
    assert first.is_visible() and not second.is_visible()
    page.locator("label[for='step-9-k2']").click()
    assert second.is_visible() and not first.is_visible()
    assert "(6.12)" in second.inner_text()
    assert not page.locator("#step-9 .kb-copy").first.is_visible()  # no script, no button
    context.close()


def test_each_kernel_panel_copies_its_own_commands(browser: Any, demo_site_url: str) -> None:
    page = _page(browser, demo_site_url)
    page.goto(f"{demo_site_url}/steps-demo.html")
    page.locator("label[for='step-9-k2']").click()
    button = page.locator("#step-9 .kb-kpanel.kb-k2 .kb-copy")
    button.click()
    page.wait_for_function(
        "document.querySelector('#step-9 .kb-k2 .kb-copy').textContent === 'Copied'"
    )
    assert page.evaluate("navigator.clipboard.readText()") == "ps -o pid,stat,cmd -C python3"
    page.context.close()


def test_prompts_cannot_be_selected(browser: Any, demo_site_url: str) -> None:
    page = _page(browser, demo_site_url)
    page.goto(f"{demo_site_url}/steps-demo.html")
    for selector in (".kb-term .gp", ".post-body > .highlight .gp"):
        style = page.locator(selector).first.evaluate("el => getComputedStyle(el).userSelect")
        assert style == "none", selector
    weight_in = page.locator(".kb-in").first.evaluate("el => getComputedStyle(el).fontWeight")
    weight_out = page.locator(".kb-out").first.evaluate("el => getComputedStyle(el).fontWeight")
    assert int(weight_in) > int(weight_out)
    page.context.close()


def _shown(step: Any) -> Any:
    """The part of a step a reader sees: the default kernel's panel, if it has several."""
    panels = step.locator(".kb-kpanel.kb-k1")
    return panels if panels.count() else step


def test_real_steps_copy_their_commands(browser: Any, real_site_url: str) -> None:
    page = _page(browser, real_site_url)
    page.goto(f"{real_site_url}/kernel-segfaults.html")
    steps = page.locator(".kb-step")
    assert steps.count() > 1, "the episode page shows no executed steps"
    shown = _shown(steps.nth(1))
    commands = shown.locator(".kb-cmd").all_inner_texts()
    button = shown.locator(".kb-term-head .kb-copy")
    button.click()
    page.wait_for_function("button => button.textContent === 'Copied'", arg=button.element_handle())
    assert page.evaluate("navigator.clipboard.readText()") == "\n".join(commands)
    page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(browser: Any, real_site_url: str, demo_site_url: str, scheme: str) -> None:
    """Pages for a person to judge: the article top, a crash step, the demo, a phone."""
    page = _page(browser, real_site_url, scheme, viewport={"width": 1100, "height": 1400})
    page.goto(f"{real_site_url}/kernel-segfaults.html")
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is (scheme == "dark")
    _shot(page, f"ep2-top-{scheme}")
    crash = page.locator(".kb-step:has(.kb-badge-oops)")
    if crash.count():
        shown = _shown(crash.first)
        shown.locator("summary").click()
        shown.scroll_into_view_if_needed()
        _shot(page, f"ep2-oops-step-{scheme}", full_page=False)
    page.locator(".footnote").scroll_into_view_if_needed()
    _shot(page, f"ep2-end-{scheme}")
    page.context.close()

    demo = _page(browser, demo_site_url, scheme, viewport={"width": 1000, "height": 1100})
    demo.goto(f"{demo_site_url}/steps-demo.html")
    demo.locator(".kb-klog summary").click()
    _shot(demo, f"demo-steps-{scheme}", full_page=True)
    demo.context.close()

    phone = _page(
        browser,
        real_site_url,
        scheme,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    phone.goto(f"{real_site_url}/kernel-segfaults.html")
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    _shot(phone, f"ep2-phone-{scheme}")
    phone.context.close()

"""Posts built through the real sandbox: captures, freeze reuse, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from minisite import MiniSite, tree_bytes

from kblog.build import BuildError

pytestmark = pytest.mark.vm
ROOT = Path(__file__).resolve().parents[2]


def command_lines() -> list[str]:
    """The command line of every process on this machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
            except OSError:
                continue
    return found


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).replace("&#39;", "'").replace("&quot;", '"')


def test_every_tag_runs_and_the_page_shows_the_capture(minisite: MiniSite) -> None:
    minisite.add("every-tag.md")
    report = minisite.build()
    assert report.vm_runs == 1
    html = (minisite.output / "every-tag.html").read_text()
    shown = text_of(html)
    # The build terminal really compiled against the guest's headers, at a reader's paths.
    assert "LD [M]  /home/user/" in shown and "/usr/src/linux-headers-6.1.0" in shown
    for host_path in ("/tmp/kblog", str(ROOT), str(minisite.root)):
        assert host_path not in html
    # The guest's answer, and the captured value substituted into the next input.
    assert "Hello, world! The module is loaded." in shown
    assert '$ echo "greeted world"' in shown
    # A capture, not the author's text: the elided lines are on the page.
    assert "a\nb\nc" in shown
    assert "0\n2" in shown and "1000" in shown
    # The sleeping step is reported as still running; the other terminal went on.
    assert "Still running after 2 s" in shown
    assert re.search(r"pgrep -c python3\n1\n", shown)
    assert 'class="kb-where">build environment' in html
    # Plain blocks are only highlighted.
    assert "/* only highlighted */" in shown
    frozen = json.loads((minisite.snippets / "every-tag.json").read_text())
    steps = frozen["kernels"]["6.1"]["result"]["steps"]
    assert [s["status"] for s in steps][-2:] == ["hang", "ok"]


def test_second_build_boots_no_vm_and_an_edit_reruns_that_post_only(minisite: MiniSite) -> None:
    minisite.add("every-tag.md")
    minisite.add("second.md")
    assert minisite.build().vm_runs == 2
    snapshot = tree_bytes(minisite.snippets)
    assert minisite.build().vm_runs == 0
    assert tree_bytes(minisite.snippets) == snapshot
    edited = (
        (minisite.content / "second.md")
        .read_text()
        .replace("echo second\nsecond", "echo edited\nedited")
    )
    minisite.add("second.md", edited)
    report = minisite.build()
    assert report.vm_runs == 1
    assert [o.post for o in report.outcomes if o.outcome != "fresh"] == ["content/second.md"]
    assert "edited" in (minisite.output / "second.html").read_text()


BAD_POSTS = {
    "timeout": (
        "```{.console session=t timeout=2}\n$ sleep 30\n```\n",
        r"content/bad\.md:8: step 1 \(t: 'sleep 30', kernel 6\.1\): no prompt came back within 2 s",
    ),
    "hang-returns": (
        "```{.console session=t expect=hang timeout=2}\n$ true\n```\n",
        r"content/bad\.md:8: .*says this never returns \(expect=hang\), but it did",
    ),
    "mismatch": (
        "```{.console session=t}\n$ echo real\nimagined\n```\n",
        r"content/bad\.md:8: .*output differs from the post:\n"
        r"--- expected\n\+\+\+ captured\n.*-imagined\n\+real",
    ),
    "silent-failure": (
        "```{.console session=t where=build}\n$ make -C nowhere\n...\n```\n",
        r"content/bad\.md:8: .*exited with status 2, and the post names none of its output lines",
    ),
    # The build sandbox: writes outside the post's tree, the network, the clock.
    "build-writes-outside": (
        "```{.console session=b where=build}\n$ touch /etc/kblog-probe\n```\n",
        r"content/bad\.md:8: step 1 \(b: 'touch /etc/kblog-probe', kernel 6\.1\): "
        r".*output differs.*Read-only file system",
    ),
    # Its 127.0.0.1 is its own loopback, where nothing listens (test_sandbox.py shows
    # that a server on this machine's loopback hears nothing).
    "build-reaches-network": (
        "```{.console session=b where=build}\n$ echo hi > /dev/tcp/127.0.0.1/9\n```\n",
        r"content/bad\.md:8: step 1 \(b: 'echo hi > /dev/tcp/127\.0\.0\.1/9', kernel 6\.1\): "
        r".*output differs.*Connection refused",
    ),
    "build-timeout": (
        "```{.console session=b where=build timeout=2}\n$ sleep 30\n```\n",
        r"content/bad\.md:8: step 1 \(b: 'sleep 30', kernel 6\.1\): no prompt came back within 2 s",
    ),
    "unclosed-quote": (
        '```{.console session=t}\n$ echo "open\n```\n',
        r"content/bad\.md:8: .*the input does not fit",
    ),
    "pycon-ends-early": (
        "```{.pycon session=p}\n>>> x = 1\n...     y = 2\n```\n",
        r"content/bad\.md:8: .*the input does not fit",
    ),
    "panic": (
        "```{.console session=t}\n$ echo c | sudo tee /proc/sysrq-trigger\n```\n",
        r"content/bad\.md:8: .*the kernel panicked",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_POSTS))
def test_bad_runs_fail_the_build_and_keep_the_previous_site(minisite: MiniSite, case: str) -> None:
    minisite.add("second.md")
    minisite.build()
    before = tree_bytes(minisite.output), tree_bytes(minisite.snippets)
    body, message = BAD_POSTS[case]
    minisite.add("bad.md", f"Title: Bad\nDate: 2026-11-03\nSlug: bad\n\nText.\n\n{body}")
    with pytest.raises(BuildError, match=re.compile(message, re.S)):
        minisite.build()
    assert (tree_bytes(minisite.output), tree_bytes(minisite.snippets)) == before
    assert not Path("/etc/kblog-probe").exists()  # the host is untouched
    assert not [p for p in command_lines() if p == "sleep 30"]  # nothing outlives its run


def test_stale_capture_without_vm_fails_saying_why(minisite: MiniSite) -> None:
    minisite.add("second.md")
    minisite.build()
    minisite.add("second.md", (minisite.content / "second.md").read_text() + "\n")
    assert minisite.build(mode="never").vm_runs == 0  # only whitespace changed: still fresh
    minisite.add(
        "second.md", (minisite.content / "second.md").read_text().replace("second\n```", "2nd\n```")
    )
    with pytest.raises(
        BuildError,
        match=r"content/second\.md: the capture for kernel 6\.1 is stale \(changed: scenario\)",
    ):
        minisite.build(mode="never")


# --- kernel events ------------------------------------------------------------------

WARN_POST = """Title: Warn
Date: 2026-11-04
Slug: warn

```{.console session=b where=build}
$ make -C warn_on_load
...
```

```{.console session=t ATTRS}
$ sudo insmod warn_on_load/warn_on_load.ko
```
"""


@pytest.fixture
def test_module_site(tmp_path: Path) -> MiniSite:
    """A mini site whose kmod/ is tests/kmod: modules that make the kernel speak."""
    (tmp_path / "content").mkdir()
    (tmp_path / "kmod").symlink_to(ROOT / "tests" / "kmod")
    return MiniSite(tmp_path)


def test_an_undeclared_kernel_event_fails_and_a_declared_one_passes(
    test_module_site: MiniSite,
) -> None:
    site = test_module_site
    site.add("warn.md", WARN_POST.replace(" ATTRS", ""))
    with pytest.raises(
        BuildError,
        match=re.compile(
            r"content/warn\.md:11: step 2 \(t: 'sudo insmod warn_on_load/warn_on_load\.ko', "
            r"kernel 6\.1\): the kernel reported WARNING \(warning\), which the post does not "
            r"declare.*\n    WARNING: CPU: \d+ PID: \d+ at /home/user/warn_on_load/warn_on_load\.c",
            re.S,
        ),
    ):
        site.build()
    assert not (site.snippets / "warn.json").exists()
    site.add("warn.md", WARN_POST.replace(" ATTRS", ' kernel-events="WARNING"'))
    assert site.build().vm_runs == 1
    assert "kb-badge-warn" in (site.output / "warn.html").read_text()


def test_a_declared_kernel_event_that_does_not_happen_fails(minisite: MiniSite) -> None:
    minisite.add(
        "quiet.md",
        "Title: Quiet\nDate: 2026-11-05\nSlug: quiet\n\n"
        '```{.console session=t kernel-events="Oops"}\n$ true\n```\n',
    )
    with pytest.raises(
        BuildError,
        match=r"content/quiet\.md:6: step 1 \(t: 'true', kernel 6\.1\): the post declares "
        r"kernel events that did not happen in this block: Oops",
    ):
        minisite.build()

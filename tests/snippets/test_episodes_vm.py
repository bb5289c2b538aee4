"""The real episodes, re-run in the sandbox on every configured kernel, as a reader sees them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from htmltree import Element, parse

from kblog.build import build_site
from runner import freeze
from runner.judge.normalize import normalize_lines
from runner.scenario import Status

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def fresh_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The whole site built with every post re-run (the committed captures untouched)."""
    root = tmp_path_factory.mktemp("episodes")
    shutil.copytree(ROOT / "content", root / "content")
    (root / "kmod").symlink_to(ROOT / "kmod")
    (root / "kernel").symlink_to(ROOT / "kernel")
    report = build_site(
        ROOT / "pelicanconf.py",
        root / "output",
        {"PATH": str(root / "content"), "CACHE_CONTENT": False, "LOAD_CONTENT_CACHE": False},
        mode="always",
    )
    return root, report


def blocks(page: Path) -> dict[str, Element]:
    """Each executed block of a built page, by its id."""
    return {e.attrs["id"]: e for e in parse(page).find_all("div", "kb-step")}


def panel(block: Element, kernel: str) -> Element:
    """One kernel's view of a block."""
    (found,) = [e for e in block.find_all("div", "kb-kpanel") if e.attrs["data-kernel"] == kernel]
    return found


def shown(block: Element, kernel: str) -> str:
    """What the reader sees in the terminal for that kernel (not the kernel log)."""
    return "\n".join(e.text() for e in panel(block, kernel).find_all("pre", "kb-term"))


def badges(block: Element, kernel: str) -> list[str]:
    return [e.text() for e in panel(block, kernel).find_all("span", "kb-badge")]


def test_episode_2_shows_what_the_guest_did(fresh_site) -> None:
    root, report = fresh_site
    assert report.vm_runs == 8  # four posts, two kernels, nothing reused
    page = root / "output" / "kernel-segfaults.html"
    html = page.read_text()
    steps = blocks(page)
    for kernel in ("6.1", "6.12"):
        views = {sid: panel(b, kernel).text() for sid, b in steps.items()}
        everything = "\n".join(shown(b, kernel) for b in steps.values())
        first = everything.index("I already told you 0 times Hello world!")
        assert everything.index("I already told you 1 times Hello world!") > first
        # The oops is in the kernel log of the step that read the freed module.
        # It is proven stuck, not waited out: the page says what the runner saw.
        (read_step,) = [
            s for s, v in views.items() if ">>> f.read()" in v and "Stuck for good" in v
        ]
        proof = r"task \d+ \(python3\) is in state X \(dead\) after \d+\.\d s"
        assert re.search(proof, views[read_step]), views[read_step]
        klog = panel(steps[read_step], kernel).find_all("details", "kb-klog")[0].text()
        assert "BUG: unable to handle page fault" in klog
        assert re.search(r"Oops: (Oops: )?0000 \[#1\]", klog)
        assert "page-fault" in badges(steps[read_step], kernel)
        # ps shows the state /proc/PID/status reports, whatever this kernel's letter is.
        ps = re.search(r"^\s*\d+ ([A-Z])\S*\s+\[python3\]$", everything, re.M)
        state = re.search(r"^State:\s+([A-Z]) \(", everything, re.M)
        assert ps and state and ps.group(1) == state.group(1)
    assert "captured on Linux 6.1.0" in html and "Linux 6.12." in html


def test_only_blocks_that_really_differ_are_marked(fresh_site) -> None:
    root, _ = fresh_site
    for name in ("kernel-segfaults.html", "first-kernel-module.html"):
        page = root / "output" / name
        marked = set()
        for sid, block in blocks(page).items():
            old, new = (normalize_lines(shown(block, k).splitlines()) for k in ("6.1", "6.12"))
            really = old != new or badges(block, "6.1") != badges(block, "6.12")
            assert ("data-differs" in block.attrs) == really, (name, sid)
            if really:
                marked.add(sid)
        summary = parse(page).find_all("aside", "kb-differences")
        listed = {a.attrs["href"][1:] for s in summary for a in s.find_all("a")}
        assert listed == marked
    # On these kernels the build output does differ (6.12 links a .module-common.o).
    assert "data-differs" in blocks(root / "output" / "kernel-segfaults.html")["step-2"].attrs


def test_episode_2_is_recorded_in_time(fresh_site) -> None:
    """Every session's output is kept in time, with a marker where each of its steps
    starts: the build pty's and the guest terminals' alike. The Python session's read
    never returns (no prompt after its marker) while the shell goes on after it."""
    root, _ = fresh_site
    for kernel, entry in freeze.load(root / "snippets" / "ep2-kernel-segfaults.json").items():
        recs = entry.result.recordings
        assert {name: r.where for name, r in recs.items()} == {
            "build": "build",
            "term1": "guest",
            "py": "guest",
        }, kernel
        (hang,) = [s for s in entry.result.steps if s.status == Status.HANG]
        after = _events_from(recs["py"].events, str(hang.index + 1))
        assert after and not any(">>> " in str(e[2]) for e in after if e[1] == "o"), kernel
        later = [e for e in recs["term1"].events if e[1] == "m" and e[0] > after[0][0]]
        assert later, kernel  # the shell's steps after the hang
        steps_marked = sum(1 for r in recs.values() for e in r.events if e[1] == "m")
        assert steps_marked == len(entry.result.steps), kernel


def _events_from(events: list[list[float | str]], marker: str) -> list[list[float | str]]:
    at = next(n for n, e in enumerate(events) if e[1] == "m" and e[2] == marker)
    return events[at:]


def test_episode_4_stops_the_built_kernel_in_gdb(fresh_site) -> None:
    """gdb stopped the kernel the post built in episode 3's call, while the program
    waited in the guest; the decoded oops names the field `read` on both kernels; drgn
    read the running kernel afterwards."""
    root, _ = fresh_site
    page = root / "output" / "looking-inside.html"
    steps = blocks(page)
    for kernel, offset in (("6.1", "0x10"), ("6.12", "0x18")):
        everything = "\n".join(shown(b, kernel) for b in steps.values())
        assert re.search(r"^Breakpoint 1, .* in __do_sys_kblog_hello \(", everything, re.M)
        assert re.search(r"in entry_SYSCALL_64 \(\) at .*entry_64\.S:\d+", everything)
        assert '"world"' in everything and '"kblog_hello' in everything
        assert "[Inferior 1 (process 1) detached]" in everything
        assert re.search(rf"^{offset}$", everything, re.M)
        assert "ssize_t (*read)(struct file *" in everything
        started = [
            b for b in steps.values() if "Left running (output=later)" in panel(b, kernel).text()
        ]
        assert len(started) == 2  # gdb's continue and the program it stopped
        _check_drgn(everything, kernel)


def _check_drgn(everything: str, kernel: str) -> None:
    """drgn's shell, in the guest on /proc/kcore, read the built kernel's tasks and log:
    the agent as pid 1, drgn and the window's shell in the task list, the same two
    walking up from drgn (the shell its parent) to the idle task, and the greeting the
    program that gdb stopped logged, with a clock that moved."""
    tasks = re.search(r"^1 S kblog-agent\n(\d+) S bash\n(\d+) R drgn$", everything, re.M)
    assert tasks is not None, kernel
    chain = re.search(
        r"^(\d+) drgn\n(\d+) bash\n1 kblog-agent\n>>> task\.comm\n\(char \[16\]\)\"swapper/0\"$",
        everything,
        re.M,
    )
    assert chain is not None, kernel
    assert (chain[1], chain[2]) == (tasks[2], tasks[1]) and int(chain[1]) > int(chain[2])
    assert re.search(r"^kblog_hello: hello, world, from kblog_hello \(pid \d+\)$", everything, re.M)
    moved = re.search(r"^jiffies went on by (\d+)$", everything, re.M)
    assert moved is not None and int(moved[1]) > 0, kernel

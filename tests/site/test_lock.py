"""Two builds (or a build and a verify) of one checkout at once: the second waits.

Real processes, as two `make html` would be; the posts "run" on an echo runner
(tests/site/buildprocess.py), so no VM starts and the whole test takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from minisite import POSTS, ROOT, MiniSite

HELPER = Path(__file__).resolve().parent / "buildprocess.py"
WAIT = 60.0


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def site(tmp_path: Path) -> MiniSite:
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "kmod").symlink_to(ROOT / "kmod")
    shutil.copy(POSTS / "second.md", root / "content")
    return MiniSite(root)


class Started:
    """A process whose stderr goes to a file, read as it grows."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def report(self) -> dict:
        out, _ = self.proc.communicate(timeout=WAIT)
        assert self.proc.returncode == 0, self.stderr
        return json.loads(out.splitlines()[-1])


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    procs: list[Started] = []

    def start(*args: str) -> Started:
        procs.append(Started([sys.executable, *args], tmp_path / f"stderr-{len(procs)}"))
        return procs[-1]

    yield start
    for p in procs:  # a failed test must not leave a build waiting on a go file
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def test_a_second_build_waits_for_the_first_and_both_end_whole(
    site: MiniSite, tmp_path: Path, started: Callable[..., Started]
) -> None:
    hold = tmp_path / "hold"
    first = started(str(HELPER), str(site.root), str(hold))
    _until(hold.with_suffix(".running").exists, "the first build to run its post")
    second = started(str(HELPER), str(site.root))
    waiting = f"waiting for pid {first.proc.pid} (a site build into {site.output}) to finish"
    _until(lambda: waiting in second.stderr or second.proc.poll() is not None, "a wait")
    assert waiting in second.stderr, "the second build did not wait:\n" + second.stderr
    time.sleep(0.5)  # it really waits: neither its run nor its site may appear
    assert second.proc.poll() is None
    assert not site.output.exists() and not site.snippets.exists()
    hold.with_suffix(".go").touch()
    assert first.report() == {"written": ["snippets/second.json"], "vm_runs": 1}
    # The second found the first's capture whole and fresh: nothing ran, nothing written.
    assert second.report() == {"written": [], "vm_runs": 0}
    assert second.stderr.count("waiting for") == 1
    assert "waiting for" not in first.stderr
    assert "second" in (site.output / "second.html").read_text()
    assert sorted(p.name for p in site.root.iterdir()) == [
        "build", "content", "kmod", "output", "snippets"  # no staging dir left behind
    ]  # fmt: skip


HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from kblog import lock
with lock.checkout_lock(Path({site!r}), "invoke verify", shared=True):
    Path({hold!r} + ".running").touch()
    while not Path({hold!r} + ".go").exists():
        time.sleep(0.05)
"""


def test_verifications_share_the_lock_and_a_build_waits_for_them(
    site: MiniSite, tmp_path: Path, started: Callable[..., Started]
) -> None:
    holders = []
    for n in range(2):  # two at once: neither waits for the other
        hold = str(tmp_path / f"verify{n}")
        code = HOLDER.format(root=str(ROOT), site=str(site.root), hold=hold)
        holders.append(started("-c", code))
        _until(Path(hold + ".running").exists, f"verification {n} to hold the lock")
    build = started(str(HELPER), str(site.root))
    last = holders[-1].proc.pid  # the latest holder is the one named
    waiting = f"waiting for pid {last} (invoke verify)"
    _until(lambda: waiting in build.stderr or build.proc.poll() is not None, "a wait")
    assert waiting in build.stderr, "the build did not wait:\n" + build.stderr
    for n in range(2):
        Path(str(tmp_path / f"verify{n}") + ".go").touch()
    assert build.report() == {"written": ["snippets/second.json"], "vm_runs": 1}
    assert all(h.proc.wait(timeout=WAIT) == 0 for h in holders)
    assert os.path.exists(site.output / "second.html")

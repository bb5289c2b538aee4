"""A guest killed from outside mid-step, as the OOM killer would: a real site build
fails naming the post's file:line and the step, says the guest was lost, and leaves
no QEMU, no run dir, and output/ and snippets/ as they were."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from minisite import KILLED_LINE, KILLED_POST, ROOT, MiniSite, tree_bytes, watch_step_starts
from vmhelp import Guest, is_dead, qemu_children, rundirs

from kblog.build import BuildError

pytestmark = pytest.mark.vm

SETTLE = 2.0  # seconds from the step's start to the kill: its command is typed by then


@pytest.fixture
def minisite(tmp_path: Path) -> MiniSite:
    (tmp_path / "content").mkdir()
    (tmp_path / "kmod").symlink_to(ROOT / "kmod")
    return MiniSite(tmp_path)


def test_guest_killed_mid_step_fails_the_build_and_leaves_nothing(
    guest: Guest, minisite: MiniSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    minisite.add("second.md")
    minisite.build()
    before = tree_bytes(minisite.output), tree_bytes(minisite.snippets)
    minisite.add("killed.md", KILLED_POST)
    step_started = watch_step_starts(monkeypatch)
    killed: list[int] = []

    def kill_while_it_sleeps() -> None:
        if not step_started(1).wait(timeout=50):
            return  # the build then fails the test by not failing as it should
        time.sleep(SETTLE)
        (qemu,) = qemu_children()  # the build runs in this process: QEMU is our child
        os.kill(qemu.pid, signal.SIGKILL)  # as the OOM killer does
        killed.append(qemu.pid)

    killer = threading.Thread(target=kill_while_it_sleeps)
    killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(BuildError) as info:
            minisite.build()
    finally:
        killer.join(timeout=60)
    took = time.monotonic() - started
    message = str(info.value)
    assert killed, message
    assert took < 20, f"the build took {took:.0f} s: it waited the sleep out"
    assert re.search(
        rf"content/killed\.md:{KILLED_LINE}: step 2 \(t: 'sleep 30', kernel 6\.1\): "
        r"the guest was lost",
        message,
    ), message
    assert "Traceback" not in message
    assert is_dead(killed[0])
    assert qemu_children() == []
    assert rundirs() == []
    assert (tree_bytes(minisite.output), tree_bytes(minisite.snippets)) == before

"""A guest killed from outside mid-step, as the OOM killer would: a real site build
fails naming the post's file:line and the step, says the guest was lost, and leaves
no QEMU, no run dir, and output/ and snippets/ as they were."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from minisite import KILLED_LINE, KILLED_POST, ROOT, MiniSite, build_killed_mid_step, tree_bytes
from vmhelp import Guest, is_dead, qemu_children, rundirs

pytestmark = pytest.mark.vm


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

    def kill_qemu() -> int:
        (qemu,) = qemu_children()  # the build runs in this process: QEMU is our child
        os.kill(qemu.pid, signal.SIGKILL)  # as the OOM killer does
        return qemu.pid

    done = build_killed_mid_step(minisite, monkeypatch, kill_qemu)
    message, took, killed = done.message, done.seconds, done.killed
    assert isinstance(killed, int), message
    assert took < 20, f"the build took {took:.0f} s: it waited the sleep out"
    assert re.search(
        rf"content/killed\.md:{KILLED_LINE}: step 2 \(t: 'sleep 30', kernel 6\.1\): "
        r"the guest was lost",
        message,
    ), message
    assert "Traceback" not in message
    assert is_dead(killed)
    assert qemu_children() == []
    assert rundirs() == []
    assert (tree_bytes(minisite.output), tree_bytes(minisite.snippets)) == before

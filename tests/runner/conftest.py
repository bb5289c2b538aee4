"""Fixtures of the runner tests: a prepared guest, and a check that no VM outlives a test."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator

import pytest
from vmhelp import Guest, qemu_children, rundirs

from runner import config
from runner.guest import image as guest_image
from runner.guest import snapshot
from runner.guest.vm import choose_accel


@pytest.fixture(autouse=True)
def no_vm_left_behind() -> Iterator[None]:
    """After every test: no QEMU child of this process, and no run dir of ours."""
    yield
    leaked = qemu_children()
    dirs = rundirs()
    for p in leaked:  # so that one leak does not fail every later test as well
        if p.state != "Z":
            os.kill(p.pid, signal.SIGKILL)
        os.waitpid(p.pid, 0)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    problems = [
        f"QEMU pid {p.pid} (state {p.state}) still a child of the test process" for p in leaked
    ]
    problems += [f"run dir {d} left behind" for d in dirs]
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture(scope="session")
def guest() -> Guest:
    """The default kernel's guest, built or found in the cache, with its snapshot saved.

    Saving the snapshot here, once, keeps the tests that time a VM's start or kill
    the runner early from paying for (or interrupting) a cold boot.
    """
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run make (runner/host-packages.txt)")
    artifacts = guest_image.prepare(config.kernel(None), log=lambda msg: None)
    accel = choose_accel(artifacts, log=lambda msg: None)
    if os.environ.get("KBLOG_SNAPSHOTS", "1") != "0":
        snapshot.ensure(artifacts, accel, log=lambda msg: None)
    return artifacts, accel

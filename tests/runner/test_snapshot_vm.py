"""The saved guest: restored for each scenario, and never trusted when it is damaged."""

from __future__ import annotations

from pathlib import Path

import pytest
from vmhelp import Guest, scenario, sh

from runner.execute import run_scenario
from runner.guest import snapshot
from runner.guest.vm import VM, BootError

pytestmark = pytest.mark.vm

QUIET = {"log": lambda msg: None}


def test_each_scenario_gets_a_fresh_guest_from_the_snapshot(guest: Guest) -> None:
    artifacts, accel = guest
    state = snapshot.state_path(artifacts, accel)
    assert state.exists()
    # What one scenario leaves in the guest is gone in the next.
    first = run_scenario(
        scenario("one", sh("t", "touch ~/left-behind && echo done", ["done"])), **QUIET
    )
    second = run_scenario(scenario("two", sh("t", "ls ~/left-behind", None)), **QUIET)
    assert first.steps[0].matched
    assert "No such file or directory" in second.steps[0].output
    assert second.provenance.boot_seconds < 5  # restored, not booted


def test_a_damaged_snapshot_is_discarded_and_rebuilt(guest: Guest) -> None:
    artifacts, accel = guest
    state = snapshot.state_path(artifacts, accel)
    size = state.stat().st_size
    with state.open("r+b") as f:  # as if the disk filled up while it was written
        f.truncate(size // 3)
    logged: list[str] = []
    result = run_scenario(scenario("after-damage", sh("t", "echo ok", ["ok"])), log=logged.append)
    assert result.steps[0].matched
    assert any("did not restore, booting cold" in line for line in logged), logged
    # The next run saves a whole state again, and restores from it.
    result = run_scenario(scenario("rebuilt", sh("t", "echo ok", ["ok"])), **QUIET)
    assert result.steps[0].matched
    assert state.exists() and result.provenance.boot_seconds < 5
    assert not [p for p in state.parent.iterdir() if p.name.startswith(".tmp-")]


def test_a_state_file_gone_before_its_restore_is_a_boot_error(guest: Guest, tmp_path: Path) -> None:
    """Another run may discard a state between its choice and the restore: the error
    is the one the run answers with a cold boot (and no QEMU is started)."""
    artifacts, accel = guest
    with pytest.raises(BootError) as caught:
        VM(artifacts, accel, restore=tmp_path / "gone.state").__enter__()
    assert caught.value.qemu_exited
    assert "gone.state: No such file or directory" in str(caught.value)

"""A full disk under the cache while a guest's state is saved: a clear error naming
the file, nothing half-written left for a later run to restore, and a later run with
room saves it."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from fulldisk import tmpfs
from vmhelp import Guest

from runner.guest import snapshot

pytestmark = pytest.mark.vm


def test_a_snapshot_save_on_a_full_cache_fails_naming_it_and_leaves_nothing(
    guest: Guest, tmp_path: Path
) -> None:
    artifacts, accel = guest
    with tmpfs(tmp_path / "cache", "16m") as cache:  # a state file is about 100 MB
        small = dataclasses.replace(artifacts, cache=cache)
        with pytest.raises(snapshot.SnapshotError) as failed:
            snapshot.ensure(small, accel, log=lambda msg: None)
        message = str(failed.value).splitlines()[0]  # the line a build logs
        assert str(cache / "snapshots") in message and "no space left" in message, message
        left = sorted(p.name for p in (cache / "snapshots").iterdir())
        assert not [name for name in left if name.endswith(".state") or ".tmp-" in name], left
        # With room again, the next run saves it.
        subprocess.run(["mount", "-o", "remount,size=512m", str(cache)], check=True)
        state = snapshot.ensure(small, accel, log=lambda msg: None)
        assert state.parent == cache / "snapshots" and state.stat().st_size > 16 << 20

"""A long step reports its latest output line while it runs, in a real run."""

from __future__ import annotations

import itertools
import re

import pytest
from vmhelp import TEST_KMOD, Guest, build, scenario

from runner.execute import run_scenario
from runner.scenario import Status

pytestmark = pytest.mark.vm


def test_a_long_step_reports_its_latest_line_as_it_runs(guest: Guest) -> None:
    seen: list[tuple[int, float, str]] = []
    result = run_scenario(
        scenario(
            "ticks",
            build("for i in 1 2 3 4 5; do echo tick $i; sleep 1; done"),
            build("echo quick"),
        ),
        kmod_dir=TEST_KMOD,
        log=lambda msg: None,
        activity=lambda index, elapsed, line: seen.append((index, elapsed, line)),
    )
    assert [s.status for s in result.steps] == [Status.OK, Status.OK]
    assert len(seen) >= 2, seen
    assert {index for index, _, _ in seen} == {0}  # the quick step stayed silent
    times = [elapsed for _, elapsed, _ in seen]
    assert times[0] > 2.0
    assert all(later - earlier > 1.0 for earlier, later in itertools.pairwise(times))
    ticks = [int(m.group(1)) for _, _, line in seen if (m := re.fullmatch(r"tick (\d)", line))]
    assert len(ticks) == len(seen), seen  # each report is the latest tick, nothing else
    assert ticks == sorted(ticks) and ticks[-1] >= 3

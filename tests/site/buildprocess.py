"""A mini site's build in a process of its own, for tests/site/test_lock.py.

    python buildprocess.py SITE [HOLD]

Posts "run" on tests/minisite.py's echo_runner (no VM). With HOLD, the run first
creates HOLD.running and waits for HOLD.go: the test decides when this build, by
then holding the checkout's lock, may go on. Prints its report as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[1] / "plugins"), str(HERE.parent)]

from minisite import MiniSite, echo_runner  # noqa: E402

import kblog.captures  # noqa: E402


def main(site: Path, hold: Path | None) -> None:
    def run(scenario: Any, kernel: str, kmod: Path) -> Any:
        if hold is not None:
            hold.with_suffix(".running").touch()
            deadline = time.monotonic() + 60
            while not hold.with_suffix(".go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return echo_runner(scenario, kernel, kmod)

    kblog.captures.sandbox_runner = lambda display=None: run  # type: ignore[assignment]
    report = MiniSite(site).build()
    written = [str(p.relative_to(site)) for p in report.captures_written]
    print(json.dumps({"written": written, "vm_runs": report.vm_runs}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)

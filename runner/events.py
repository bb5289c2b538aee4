"""How a run reports as it goes: the callback types, and their wire format.

A run calls `log(message)` for what a person should read,
`progress(index, total, step, result)` before (result None) and after each step,
and, while a step runs long, `activity(index, elapsed, line)`: the seconds since
the step began and its latest output line (ActivityThrottle says how often).
Across a process boundary (the runner in the Docker container, `python -m runner
--events`) the same calls travel as JSON objects, one per line of stderr:

    {"event": "log", "message": "..."}
    {"event": "step", "index": 3, "total": 27, "result": null | {StepResult}}
    {"event": "activity", "index": 3, "elapsed": 42.5, "line": "CC kernel/fork.o"}
    {"event": "error", "message": "..."}      the run could not go on

`encode_*` write them and `Relay` reads them back into the same callbacks; this
module is the only place that knows the format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TextIO

from runner.scenario import Scenario, Step, StepResult

Log = Callable[[str], None]
Progress = Callable[[int, int, Step, "StepResult | None"], None]
# (step index, seconds since the step began, its latest non-empty output line)
Activity = Callable[[int, float, str], None]

ACTIVITY_AFTER = 2.0  # a step reports activity only once it has run longer than this
ACTIVITY_EVERY = 1.0  # and then at most once per this many seconds


class ActivityThrottle:
    """One running step's activity reports: none while the step is young (quick
    steps stay silent), then at most one per `every` seconds."""

    def __init__(
        self,
        activity: Activity,
        index: int,
        started: float,
        *,
        after: float = ACTIVITY_AFTER,
        every: float = ACTIVITY_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.activity = activity
        self.index = index
        self.started = started  # on `clock`'s scale
        self.every = every
        self.clock = clock
        self._next = started + after

    def tick(self, latest: Callable[[], str]) -> None:
        """Report `latest()` if one is due; `latest` is not called otherwise."""
        now = self.clock()
        if now <= self._next:
            return
        self._next = now + self.every
        self.activity(self.index, now - self.started, latest())


def encode_log(message: str) -> str:
    return json.dumps({"event": "log", "message": message})


def encode_step(index: int, total: int, result: StepResult | None) -> str:
    data = None if result is None else asdict(result)
    return json.dumps({"event": "step", "index": index, "total": total, "result": data})


def encode_activity(index: int, elapsed: float, line: str) -> str:
    return json.dumps(
        {"event": "activity", "index": index, "elapsed": round(elapsed, 1), "line": line}
    )


def encode_error(message: str) -> str:
    return json.dumps({"event": "error", "message": message})


def writers(out: TextIO) -> tuple[Log, Progress, Activity]:
    """A log, a progress and an activity callback that write events to `out`, a line each."""

    def write(line: str) -> None:
        print(line, file=out, flush=True)

    def progress(index: int, total: int, step: Step, result: StepResult | None) -> None:
        write(encode_step(index, total, result))

    def activity(index: int, elapsed: float, line: str) -> None:
        write(encode_activity(index, elapsed, line))

    return (lambda message: write(encode_log(message))), progress, activity


@dataclass
class Relay:
    """Reads event lines back into the log, progress and activity callbacks of a run
    of `scenario`."""

    scenario: Scenario
    log: Log
    progress: Progress | None = None
    activity: Activity | None = None
    error: str = ""  # the last error event seen
    # The steps that finished, by index: what is known of a run whose process died.
    results: dict[int, StepResult] = field(default_factory=dict)

    def line(self, text: str) -> None:
        try:
            event = json.loads(text)
            kind = event["event"]
        except (ValueError, KeyError, TypeError):
            if text.strip():
                self.log(text)  # not an event: a traceback, a warning
            return
        if kind == "log":
            self.log(str(event.get("message", "")))
        elif kind == "step":
            index = int(event["index"])
            data = event.get("result")
            result = StepResult.from_json(data) if data is not None else None
            if result is not None:
                self.results[index] = result
            if self.progress is not None:
                self.progress(index, int(event["total"]), self.scenario.steps[index], result)
        elif kind == "activity" and self.activity is not None:
            self.activity(int(event["index"]), float(event["elapsed"]), str(event.get("line", "")))
        elif kind == "error":
            self.error = str(event.get("message", ""))

"""How a run reports as it goes: the callback types, and their wire format.

A run calls `log(message)` for what a person should read and
`progress(index, total, step, result)` before (result None) and after each step.
Across a process boundary (the runner in the Docker container, `python -m runner
--events`) the same calls travel as JSON objects, one per line of stderr:

    {"event": "log", "message": "..."}
    {"event": "step", "index": 3, "total": 27, "result": null | {StepResult}}
    {"event": "error", "message": "..."}      the run could not go on

`encode_*` write them and `Relay` reads them back into the same callbacks; this
module is the only place that knows the format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TextIO

from runner.scenario import Scenario, Step, StepResult

Log = Callable[[str], None]
Progress = Callable[[int, int, Step, "StepResult | None"], None]


def encode_log(message: str) -> str:
    return json.dumps({"event": "log", "message": message})


def encode_step(index: int, total: int, result: StepResult | None) -> str:
    data = None if result is None else asdict(result)
    return json.dumps({"event": "step", "index": index, "total": total, "result": data})


def encode_error(message: str) -> str:
    return json.dumps({"event": "error", "message": message})


def writers(out: TextIO) -> tuple[Log, Progress]:
    """A log and a progress callback that write events to `out`, a line each."""

    def write(line: str) -> None:
        print(line, file=out, flush=True)

    def progress(index: int, total: int, step: Step, result: StepResult | None) -> None:
        write(encode_step(index, total, result))

    return (lambda message: write(encode_log(message))), progress


@dataclass
class Relay:
    """Reads event lines back into a log and a progress callback for `scenario`."""

    scenario: Scenario
    log: Log
    progress: Progress | None = None
    error: str = ""  # the last error event seen

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
        elif kind == "step" and self.progress is not None:
            index = int(event["index"])
            result = event.get("result")
            self.progress(
                index,
                int(event["total"]),
                self.scenario.steps[index],
                StepResult.from_json(result) if result is not None else None,
            )
        elif kind == "error":
            self.error = str(event.get("message", ""))

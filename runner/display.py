"""A run shown as it goes, with rich: live rows on a terminal, plain lines in a log.

Each running scenario (or other long task: a kernel build) has a row: how long
its current step has run, which step it is, and the step's latest output line
(the activity reports of runner/events.py). On a terminal the rows are redrawn in
place by rich's Live, a scenario's with a bar of the steps done. Anywhere else (a
CI log, a pipe, a file) nothing is redrawn and no control code is written: a step
that runs long gets a plain line every PLAIN_EVERY seconds instead. Messages go
above the rows, and a run may also print a line per finished step.

Host side only: the runner in the container reports JSON events, and neither it
nor anything it imports needs rich.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from runner.judge import verdict
from runner.scenario import Status, Step, StepResult
from runner.terminal import last_line

PLAIN_EVERY = 15.0  # seconds between two plain lines about one long step
REFRESH_PER_SECOND = 2
BAR_WIDTH = 24
INPUT_WIDTH = 60  # characters of a step's first input line shown in its heading

Clock = Callable[[], float]
TaskProgress = Callable[[float, str], None]  # (seconds since the step began, latest line)


def clock_time(seconds: float) -> str:
    """0:42, 12:05, 1:02:03."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Row:
    """What one running thing shows."""

    label: str  # which run: "ep3-build [6.1]", or "" where there is only one
    head: str  # what it does now: "step 4/9 build: make -j2 bzImage"
    since: float  # when that began, on the display's clock
    due: float  # when a plain line about it is next due
    done: int = 0  # steps finished
    total: int = 0  # steps in all; 0: no bar
    index: int = -1  # the step running, -1 for none
    elapsed: float = 0.0  # the last elapsed time reported
    latest: str = ""  # the latest output line of what runs

    def title(self) -> str:
        return f"{self.label} {self.head}".strip()

    def plain(self, now: float) -> str:
        text = f"[{clock_time(now - self.since)}] {self.title()}"
        return f"{text} | {self.latest}" if self.latest else text

    def live(self, now: float) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        cells: list[RenderableType] = []
        if self.total:
            grid.add_column(width=BAR_WIDTH, no_wrap=True)
            cells.append(ProgressBar(total=self.total, completed=self.done, width=BAR_WIDTH))
        grid.add_column()  # wrappable, so it is the column that narrows on a narrow terminal
        head = f"{clock_time(now - self.since)} {self.title()}"
        grid.add_row(*cells, Text(head, no_wrap=True, overflow="ellipsis"))
        if self.latest:
            under = Text(self.latest, style="dim", no_wrap=True, overflow="ellipsis")
            grid.add_row(*([Text("")] if self.total else []), under)
        return grid


class Display:
    """Rows for what runs now, on `console` (stderr by default, so that results on
    stdout stay clean). Live on a terminal, plain lines elsewhere; thread-safe, so
    that parallel runs can share one."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        every: float = PLAIN_EVERY,
        clock: Clock = time.monotonic,
    ) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal
        self.every = every
        self.clock = clock
        self._rows: list[Row] = []
        self._lock = threading.Lock()  # the rows; never held while calling rich
        self._life = threading.Lock()  # starting and stopping the Live
        self._screen: Live | None = None

    def print(self, message: str) -> None:
        """A line above the rows, as it is: no markup, no wrapping."""
        self.console.print(Text(message), soft_wrap=True)

    def __rich__(self) -> RenderableType:
        """The rows as they are now: what the Live redraws."""
        now = self.clock()
        with self._lock:
            return Group(*(row.live(now) for row in self._rows))

    @contextlib.contextmanager
    def scenario(self, label: str = "", *, steps: bool = False) -> Iterator[ScenarioView]:
        """A row for one scenario run while the body runs; its callbacks are the view's
        `progress` and `activity`. `steps`: also print a line per finished step."""
        with self._row(label, "starting") as row:
            yield ScenarioView(self, row, steps)

    @contextlib.contextmanager
    def task(self, label: str) -> Iterator[TaskProgress]:
        """A row for a task that reports (elapsed, latest line) as it goes (a kernel
        build); an elapsed time smaller than the last one starts a new step."""
        with self._row(label, "") as row:

            def progress(elapsed: float, line: str) -> None:
                with self._lock:
                    if elapsed < row.elapsed:
                        row.latest, row.due = "", self.clock() - elapsed + self.every
                self._report(row, None, elapsed, line)

            yield progress

    @contextlib.contextmanager
    def _row(self, label: str, head: str) -> Iterator[Row]:
        now = self.clock()
        row = Row(label, head, since=now, due=now + self.every)
        with self._life:
            with self._lock:
                self._rows.append(row)
            if self.live and self._screen is None:
                self._screen = Live(
                    self,
                    console=self.console,
                    refresh_per_second=REFRESH_PER_SECOND,
                    transient=True,
                    # Whatever else writes to stderr (a warning) goes above the rows;
                    # stdout stays as it is: `invoke verify` holds Pelican's.
                    redirect_stdout=False,
                    redirect_stderr=True,
                )
                self._screen.start()
        try:
            yield row
        finally:
            with self._life:
                with self._lock:
                    self._rows.remove(row)
                    last = not self._rows
                if last and self._screen is not None:
                    self._screen.stop()
                    self._screen = None

    def _begin(self, row: Row, index: int, total: int, head: str) -> None:
        now = self.clock()
        with self._lock:
            row.index, row.total, row.done, row.head = index, total, index, head
            row.since, row.due, row.elapsed, row.latest = now, now + self.every, 0.0, ""

    def _end(self, row: Row, done: int) -> None:
        with self._lock:
            row.index, row.done = -1, done

    def _report(self, row: Row, index: int | None, elapsed: float, line: str) -> None:
        """What runs has run `elapsed` seconds and shows `line`; in a log, say so when
        a line is due. `index`: the step the report is about (None: whatever runs)."""
        now = self.clock()
        shown = None
        with self._lock:
            if index is not None and index != row.index:
                return  # late news of a step already over
            row.since, row.elapsed = now - elapsed, elapsed
            row.latest = last_line(line) or row.latest
            if not self.live and now >= row.due:
                row.due = now + self.every
                shown = row.plain(now)
        if shown is not None:
            self.print(shown)


class ScenarioView:
    """One scenario run's row: its progress and activity callbacks (runner/events.py)."""

    def __init__(self, display: Display, row: Row, steps: bool) -> None:
        self.display = display
        self.row = row
        self.steps = steps
        self.started = display.clock()

    def progress(self, index: int, total: int, step: Step, result: StepResult | None) -> None:
        first = _cut((result.input if result else step.input).split("\n")[0], INPUT_WIDTH)
        if result is None:
            self.display._begin(
                self.row, index, total, f"step {index + 1}/{total} {step.session}: {first}"
            )
            return
        self.display._end(self.row, index + 1)
        if self.steps:
            self.display.print(self.finished(index, total, step, result, first))

    def activity(self, index: int, elapsed: float, line: str) -> None:
        self.display._report(self.row, index, elapsed, line)

    def finished(self, index: int, total: int, step: Step, result: StepResult, first: str) -> str:
        """A finished step's line: k of N, the run's time so far, ok or FAILED."""
        elapsed = self.display.clock() - self.started
        mark = "ok" if verdict.passed(result) else "FAILED"
        note = ""
        if result.status == Status.HANG:
            note = f" ({result.hang_proof or 'still running'}, as expected)"
        line = f"step {index + 1}/{total} {elapsed:6.1f}s {step.session:>8}: {first}  {mark}{note}"
        return f"{self.row.label} {line}" if self.row.label else line

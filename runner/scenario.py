"""The scenario model: ordered steps in named terminals, and what each one did.

Knows nothing of Markdown or QEMU: the site builds Scenarios from posts, the
runner executes them, and both exchange them as JSON.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

LANGUAGES = {"console": "shell", "pycon": "python", "gdb": "gdb"}
# The kinds a guest terminal goes between: a shell step may start a Python shell
# (python3, drgn) that the session's next blocks type into, until it exits.
TERMINAL_KINDS = ("shell", "python")
# gdb's prompt: it starts each input of a gdb block, and the page shows it.
GDB_PROMPT = "(gdb) "
WHERES = ("guest", "build")
# Which kernel a guest step runs on: the stock kernel of the run, or the one the
# scenario's build steps made (~/build's bzImage).
BOOTS = ("stock", "built")
# When a step's output is read: at once; `later`, the step is started and left
# running (a command the guest will stop in, gdb's `continue`), and the next step of
# its session, marked `collect` and typed the same, shows what it printed.
OUTPUTS = ("now", "later", "collect")


class ScenarioError(ValueError):
    """A scenario that cannot be run as written; names the step's source."""


@dataclass
class Step:
    """One line typed (plus its continuation lines) and the output its author expects."""

    session: str
    language: str  # a key of LANGUAGES
    input: str  # continuation lines joined by "\n", without prompts
    expected: list[str] | None = None  # None: no expectation (not matched)
    where: str = "guest"
    expect_hang: bool = False
    timeout: float = 60.0
    source: str = "?"  # "file:line", for error messages
    block: int = 0  # steps of one fenced block share this number
    # The kernel events (kernel_log kinds) the block is expected to cause, by kernel
    # label; "*" for every kernel without its own entry. None: none at all.
    kernel_events: dict[str, list[str]] | None = None
    boot: str = "stock"  # guest steps only: one of BOOTS
    output: str = "now"  # one of OUTPUTS

    def validate(self) -> None:
        if self.language not in LANGUAGES:
            raise ScenarioError(f"{self.source}: unknown language {self.language!r}")
        if self.where not in WHERES:
            raise ScenarioError(f"{self.source}: where={self.where!r}, expected one of {WHERES}")
        if not self.session or not self.session.replace("-", "").replace("_", "").isalnum():
            raise ScenarioError(f"{self.source}: bad session name {self.session!r}")
        if self.language == "gdb" and self.where != "guest":
            raise ScenarioError(
                f"{self.source}: a gdb session debugs the guest: it cannot be where={self.where}"
            )
        if self.where == "build" and self.language != "console":
            raise ScenarioError(f"{self.source}: the build environment only runs shell sessions")
        if self.boot not in BOOTS:
            raise ScenarioError(f"{self.source}: boot={self.boot!r}, expected one of {BOOTS}")
        if self.where == "build" and self.boot != "stock":
            raise ScenarioError(f"{self.source}: boot= is for guest steps; this one builds")
        if self.timeout <= 0:
            raise ScenarioError(f"{self.source}: timeout must be positive")
        if self.output not in OUTPUTS:
            raise ScenarioError(f"{self.source}: output={self.output!r}, expected one of {OUTPUTS}")
        if self.output == "later" and self.expect_hang:
            raise ScenarioError(
                f"{self.source}: output=later and expect=hang exclude each other: a started "
                "step's output is collected, a hung one's never comes"
            )
        if self.output != "now" and "\n" in self.input:
            raise ScenarioError(f"{self.source}: output={self.output} needs a one-line input")
        if self.language == "gdb" and self.expect_hang:
            raise ScenarioError(
                f"{self.source}: a gdb step cannot expect=hang: start the command with "
                "output=later and collect it with output=collect"
            )

    @property
    def kind(self) -> str:
        return LANGUAGES[self.language]


@dataclass
class Scenario:
    name: str
    steps: list[Step]

    @property
    def builds_kernel(self) -> bool:
        """Whether some step runs on a kernel the scenario builds."""
        return any(step.boot == "built" for step in self.steps)

    def validate(self) -> None:
        kinds: dict[str, tuple[str, str]] = {}
        built_yet = False
        started: dict[str, Step] = {}  # session -> its output=later step, until collected
        for step in self.steps:
            step.validate()
            _check_started(started, step)
            built_yet = built_yet or step.where == "build"
            if step.boot == "built" and not built_yet:
                raise ScenarioError(
                    f"{step.source}: boot=built, but no build step comes before it to build "
                    "the kernel"
                )
            seen = kinds.setdefault(step.session, (step.kind, step.where))
            if seen != (step.kind, step.where) and not _same_terminal(seen, step):
                raise ScenarioError(
                    f"{step.source}: session {step.session!r} is a {seen[0]} session "
                    f"in the {seen[1]} environment; this step uses it as "
                    f"{step.kind} in {step.where}"
                )
        for step in started.values():
            raise ScenarioError(
                f"{step.source}: output=later, but no later block of session {step.session!r} "
                "collects its output (the same input, marked output=collect)"
            )

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [asdict(s) for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        try:
            steps = [Step(**s) for s in data["steps"]]
            return cls(name=data["name"], steps=steps)
        except (KeyError, TypeError) as exc:
            raise ScenarioError(f"malformed scenario: {exc}") from exc

    def digest(self) -> str:
        """A hash of what is run (sources and line numbers do not count)."""
        essence = [{k: v for k, v in asdict(s).items() if k not in ("source",)} for s in self.steps]
        return hashlib.sha256(json.dumps(essence, sort_keys=True).encode()).hexdigest()[:16]


def _same_terminal(seen: tuple[str, str], step: Step) -> bool:
    """Whether `step` may type into a session first seen as `seen` (kind, where): a
    guest terminal shows a shell or a Python it started; which one it shows when the
    step comes is the run's to check (execute.py), from the prompt it printed."""
    kind, where = seen
    return where == step.where == "guest" and {kind, step.kind} <= set(TERMINAL_KINDS)


def _check_started(started: dict[str, Step], step: Step) -> None:
    """output=later and output=collect used as a pair, in this order, in one session,
    on one guest; `started` holds each session's step still to be collected."""
    pending = started.get(step.session)
    if step.output == "collect":
        if pending is None:
            raise ScenarioError(
                f"{step.source}: output=collect, but nothing was started in session "
                f"{step.session!r} with output=later before it"
            )
        if pending.input != step.input:
            raise ScenarioError(
                f"{step.source}: output=collect types {step.input!r}, but what session "
                f"{step.session!r} started at {pending.source} is {pending.input!r}"
            )
        del started[step.session]
    elif pending is not None:
        raise ScenarioError(
            f"{step.source}: session {step.session!r} still runs {pending.input!r} "
            f"(output=later at {pending.source}): collect it first (output=collect)"
        )
    for other in started.values():
        if step.where == "guest" and other.where == "guest" and step.boot != other.boot:
            raise ScenarioError(
                f"{step.source}: boot={step.boot} starts another guest, but {other.input!r} "
                f"(output=later at {other.source}) is not collected yet"
            )
    if step.output == "later":
        started[step.session] = step


class Status(enum.StrEnum):
    """How a step ended. Stored as its value; runner/judge/verdict.py judges it."""

    OK = "ok"  # a prompt came back
    HANG = "hang"  # still running at its timeout, or proven stuck, as expect=hang says
    TIMEOUT = "timeout"  # still running at its timeout, unexpectedly
    UNEXPECTED_RETURN = "unexpected-return"  # expect=hang, but a prompt came back
    INCOMPLETE_INPUT = "incomplete-input"  # the typed lines did not fit the program
    TOO_MUCH_OUTPUT = "too-much-output"  # printed past the output limit: interrupted
    PANIC = "panic"  # the kernel panicked during the step
    LOST = "lost"  # QEMU exited or the session died
    NOT_RUN = "not-run"  # an earlier failure stopped the scenario
    STARTED = "started"  # output=later: typed and left running; a later step collects it


# The statuses that fail a step whatever its output.
FAILED_STATUSES = frozenset(Status) - {Status.OK, Status.HANG, Status.STARTED}


@dataclass
class KernelEvent:
    kind: str  # "BUG", "Oops", "WARNING", "panic", "recursive-fault", ...
    line: str  # the console line that announced it


@dataclass
class StepResult:
    index: int
    status: Status
    prompt: str  # the prompt shown before the input, e.g. "$ "
    input: str  # as typed, with captured values substituted
    output: str  # what the terminal showed after the echo of the input
    exit_status: int | None  # the shell's $? (None for Python and unfinished steps)
    duration: float
    where: str
    kernel: str = ""  # for a guest step, the `uname -r` of the kernel it ran on
    kernel_log: list[str] = field(default_factory=list)
    events: list[KernelEvent] = field(default_factory=list)
    matched: bool | None = None  # None: the step has no expectation
    # For an expect=hang step that was proven stuck, what showed it (the task's state).
    hang_proof: str = ""
    diff: str = ""
    captures: dict[str, str] = field(default_factory=dict)
    # What the runner found beside the output that explains a failure (a patch's
    # rejected hunks): for the error message, not the page.
    detail: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepResult:
        data = dict(data)
        data["status"] = Status(data["status"])
        data["events"] = [KernelEvent(**e) for e in data.get("events", [])]
        return cls(**data)


@dataclass
class Provenance:
    kernel: str  # uname -r in the guest
    kernel_package: str  # Debian package version
    accel: str
    accel_reason: str
    qemu: str
    captured_at: str  # ISO 8601, UTC
    boot_seconds: float
    total_seconds: float
    # The kernel the build steps made, where a guest step booted it: its `release`,
    # `source_package` and `source_version`, the `patch` it was built with (its path
    # under kmod/; "" if no patch file of the post's tree is what changed the source),
    # `patch_sha256`, its `fragment` (kernel/guest.config, then any other fragment of
    # kernel/ its .config carries, space-separated) and `fragment_sha256` (alike).
    built: dict[str, str] = field(default_factory=dict)


@dataclass
class SessionRecording:
    """One session's output in time (runner/terminal.py's Recording): for a replay of
    the run, never judged or compared. Events: [seconds from the run's start, "o",
    text] and [seconds, "m", step number from 1] where a step starts."""

    where: str  # "guest" or "build"
    kind: str  # "shell" or "python"
    events: list[list[float | str]] = field(default_factory=list)


@dataclass
class ScenarioResult:
    scenario: str
    provenance: Provenance
    steps: list[StepResult]
    error: str = ""  # why the run stopped early, if it did
    recordings: dict[str, SessionRecording] = field(default_factory=dict)  # by session

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScenarioResult:
        return cls(
            scenario=data["scenario"],
            provenance=Provenance(**data["provenance"]),
            steps=[StepResult.from_json(s) for s in data["steps"]],
            error=data.get("error", ""),
            recordings={
                name: SessionRecording(**rec) for name, rec in data.get("recordings", {}).items()
            },
        )

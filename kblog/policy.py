"""When a post's frozen capture is reused, re-made, or refused: the freshness policy.

A capture is fresh when its key (freeze.key_of over the scenario, the kernel,
kmod/ and the runner's sources) equals the key of the inputs now. The build's
mode then decides: `auto` re-runs stale posts, `never` refuses to run any,
`always` re-runs all of them (and reports drift from the published capture).
Pure functions: tested without a VM.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from runner import freeze
from runner.judge.normalize import drift, kernel_renames

MODES = ("auto", "never", "always")


class Action(enum.Enum):
    REUSE = "reuse"  # the frozen capture is what the page shows
    RUN = "run"  # run the post in the sandbox
    REFUSE = "refuse"  # stale, and no VM may run: the build fails


class State(enum.StrEnum):
    """What a post's build used for one kernel, as `invoke verify` reports it."""

    FRESH = "fresh"  # reused, or re-run and the same as published
    CAPTURED = "captured"  # made now: no capture, or a stale one
    DRIFTED = "drifted"  # re-run although fresh, and different from the published one
    FAILED = "failed"  # the run did not do what the post says
    STALE = "stale"  # stale and not run (mode never)
    NOT_RUN = "not run"  # a share of a verification never reached it


@dataclass(frozen=True)
class Decision:
    action: Action
    fresh: bool  # whether the frozen entry's key matches the inputs now
    why: str = ""  # for a stale capture: what changed


def check_mode(mode: str) -> None:
    """Refuse a mode that is not one of MODES, naming the setting."""
    if mode not in MODES:
        raise ValueError(f"KBLOG_EXECUTE={mode!r}: expected one of {', '.join(MODES)}")


def decide(mode: str, entry: dict[str, Any] | None, inputs: dict[str, str]) -> Decision:
    """What to do for one post and kernel, given its frozen entry (or None)."""
    check_mode(mode)
    fresh = entry is not None and entry.get("key") == freeze.key_of(inputs)
    if fresh and mode != "always":
        return Decision(Action.REUSE, fresh)
    if fresh:
        return Decision(Action.RUN, fresh)  # re-run although fresh: nothing changed
    why = "no capture yet" if entry is None else changed(entry.get("inputs", {}), inputs)
    if mode == "never":
        return Decision(Action.REFUSE, fresh, why)
    return Decision(Action.RUN, fresh, why)


def changed(old: dict[str, str], new: dict[str, str]) -> str:
    """Which key inputs differ, for the author: "changed: scenario, runner"."""
    names = [k for k in new if old.get(k) != new[k]]
    return "changed: " + ", ".join(names) if names else "unknown inputs"


def after_run(
    decision: Decision, entry: dict[str, Any] | None, new_entry: dict[str, Any]
) -> tuple[State, str]:
    """(the outcome's state, its detail) once a run succeeded. A fresh capture that was
    re-run is compared with the published one, and so is a run on another ABI of the
    same series (verify --newest): it would be fresh but for the kernel release, whose
    name and Debian version are then set aside."""
    if entry is None:
        return State.CAPTURED, ""
    old_inputs = entry.get("inputs", {})
    differing = {k for k, v in new_entry["inputs"].items() if old_inputs.get(k) != v}
    if not (decision.fresh or differing == {"kernel"}):
        return State.CAPTURED, ""
    was, now = entry["result"], new_entry["result"]
    renames = kernel_renames(was["provenance"], now["provenance"])
    detail = drift(was["steps"], now["steps"], renames)
    return (State.DRIFTED if detail else State.FRESH), detail

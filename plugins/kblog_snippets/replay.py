"""A post's run replayed in time: asciicast v2 files made from its captures' recordings.

Each session of a run on one kernel becomes one recording (asciicast v2: a JSON
header line, then one [seconds, code, data] line per event), with an "m" marker
where each of its steps starts. The sessions of a run share one clock, and idle
time is compressed on that clock, across all of them at once, so that a moment is
the same moment in every session: switching terminals mid-replay keeps the place,
and a terminal that hangs while another works stays frozen on screen for as long
as the other works. Times are the build machine's, under its accelerator.

Written beside the pages (output/replay/): each session's .cast file, and one
script per post that holds the same recordings for the page's player (a script
tag loads from file:// too, where the player could not fetch a .cast).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.scenario import ScenarioResult, SessionRecording

REPLAY = "replay"  # the directory under the output
# Silences longer than this (seconds, on the run's shared clock) are shortened to it,
# here and not by the player: its idleTimeLimit would shorten each session's own
# silences, and a terminal waiting while another works would skip ahead of it.
IDLE_LIMIT = 1.0
# The player's terminal: wide enough for a kernel log line, a screenful of output.
COLS, ROWS = 100, 24
WHERE = {"guest": "guest VM", "build": "build environment"}
_string = json.encoder.encode_basestring  # a JSON string, non-ASCII kept as it is


@dataclass(frozen=True)
class Replay:
    """One kernel's run of a post, ready for the player."""

    casts: dict[str, str]  # session -> asciicast v2 text
    steps: dict[int, tuple[str, float]]  # step number from 1 -> (session, replay time)
    duration: float  # seconds the replay lasts


def compressed(times: list[float], limit: float = IDLE_LIMIT) -> dict[float, float]:
    """Each of `times` on a clock where no gap between two of them is over `limit`."""
    shifted: dict[float, float] = {}
    cut, previous = 0.0, None
    for t in sorted(set(times)):
        if previous is not None and t - previous > limit:
            cut += t - previous - limit
        shifted[t] = round(t - cut, 3)
        previous = t
    return shifted


def make(result: ScenarioResult, title: str) -> Replay | None:
    """The replay of one run (None: it was captured before runs were recorded)."""
    recordings = {name: rec for name, rec in result.recordings.items() if rec.events}
    if not recordings:
        return None
    # From the run's start (0): a guest's boot before the first output is idle too.
    at = compressed([0.0] + [float(e[0]) for rec in recordings.values() for e in rec.events])
    inputs = {step.index + 1: step.input.split("\n")[0] for step in result.steps}
    casts: dict[str, list[str]] = {}
    steps: dict[int, tuple[str, float]] = {}
    for name, rec in sorted(recordings.items()):
        lines = [json.dumps(_header(name, rec, title))]
        for t, code, data in rec.events:
            when = at[float(t)]
            if code == "m":
                number = int(data)
                steps[number] = (name, when)
                data = f"step {number}: {inputs.get(number, '')}"
            # As json.dumps would write it, without its cost per call (a kernel
            # build's step is thousands of events, made again on every build).
            lines.append(f'[{when!r}, "{code}", {_string(str(data))}]')
        casts[name] = lines
    duration = max(at.values())
    # Every session's recording lasts the whole run, so that switching to one at any
    # moment of the run finds that moment.
    done = {
        name: "\n".join([*lines, json.dumps([duration, "o", ""])]) + "\n"
        for name, lines in casts.items()
    }
    return Replay(done, dict(sorted(steps.items())), duration)


def _header(name: str, rec: SessionRecording, title: str) -> dict[str, Any]:
    return {
        "version": 2,
        "width": COLS,
        "height": ROWS,
        # No idle_time_limit: a player would cut each session's silences on its own,
        # and the sessions' moments would no longer match (see IDLE_LIMIT).
        "title": f"{title}: {name}, {WHERE.get(rec.where, rec.where)}",
    }


def cast_name(post: str, kernel: str, session: str) -> str:
    """Where a session's recording is written, relative to the output."""
    return f"{REPLAY}/{post}/{kernel}/{session}.cast"


def script_name(post: str) -> str:
    return f"{REPLAY}/{post}.js"


def page(post: str, results: dict[str, ScenarioResult], siteurl: str) -> dict[str, Any] | None:
    """What theme/templates/kblog/replay.html is given (None: nothing was recorded)."""
    kernels = []
    sessions: dict[str, str] = {}
    for kernel, result in results.items():
        recorded = {name: rec for name, rec in result.recordings.items() if rec.events}
        if not recorded:
            continue
        for name, rec in recorded.items():
            sessions.setdefault(name, WHERE.get(rec.where, rec.where))
        prov = result.provenance
        kernels.append(
            {
                "label": kernel,
                "release": prov.kernel,
                "accel": prov.accel.upper(),
                "qemu": prov.qemu,
                "captured_at": prov.captured_at,
                "casts": [
                    {"session": name, "url": f"{siteurl}/{cast_name(post, kernel, name)}"}
                    for name in sorted(recorded)
                ],
            }
        )
    if not kernels:
        return None
    return {
        "post": post,
        "script": f"{siteurl}/{script_name(post)}",
        "kernels": kernels,
        "sessions": [{"name": n, "where": w} for n, w in sessions.items()],
        "idle_limit": IDLE_LIMIT,
        "cols": COLS,
        "rows": ROWS,
    }


def files(post: str, title: str, results: dict[str, ScenarioResult]) -> dict[str, str]:
    """A post's .cast files and the script its page loads them from, by their path
    under the output (none: nothing was recorded)."""
    made: dict[str, str] = {}
    data: dict[str, Any] = {}
    for kernel, result in results.items():
        replay = make(result, title)
        if replay is None:
            continue
        for session, text in replay.casts.items():
            made[cast_name(post, kernel, session)] = text
        data[kernel] = {
            "casts": replay.casts,
            "steps": {str(n): list(where) for n, where in replay.steps.items()},
            "duration": replay.duration,
        }
    if not data:
        return {}
    # JSON is JavaScript; "</" escaped all the same, should the file ever be inlined.
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    made[script_name(post)] = (
        "window.kblogReplay = window.kblogReplay || {};\n"
        f"window.kblogReplay[{json.dumps(post)}] = {payload};\n"
    )
    return made


def write(output: Path, made: dict[str, str]) -> None:
    """`files()` written under the output."""
    for name, text in made.items():
        path = output / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

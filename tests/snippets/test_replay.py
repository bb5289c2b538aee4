"""plugins/kblog_snippets/replay.py: a run's recordings as asciicast v2, on one clock."""

from __future__ import annotations

import json
from pathlib import Path

from kblog_snippets import replay

from runner.scenario import Provenance, ScenarioResult, SessionRecording, Status, StepResult


def _run() -> ScenarioResult:
    """Two terminals: the shell types, Python's read hangs for 40 s while the shell
    goes on (its silence is compressed, the shell's steps stay where they were)."""
    prov = Provenance("6.1.0-56-amd64", "6.1.1", "tcg", "test", "7.2", "2026-12-05", 0.2, 50.0)
    steps = [
        StepResult(0, Status.OK, "$ ", "sudo insmod m.ko", "", 0, 0.3, "guest"),
        StepResult(1, Status.HANG, ">>> ", "f.read()", "", None, 0.4, "guest"),
        StepResult(2, Status.OK, "$ ", "sudo rmmod m", "", 0, 0.2, "guest"),
    ]
    shell: list[list[float | str]] = [[0.0, "o", "$ "], [0.5, "m", "1"]]
    shell += [[0.5, "o", "sudo insmod m.ko\r\n$ "], [41.0, "m", "3"], [41.1, "o", "sudo rmmod m"]]
    python: list[list[float | str]] = [[0.2, "o", ">>> "], [1.0, "m", "2"]]
    python += [[1.0, "o", "f.read()\r\n"]]
    recordings = {
        "term1": SessionRecording("guest", "shell", shell),
        "py": SessionRecording("guest", "python", python),
    }
    return ScenarioResult("ep", prov, steps, recordings=recordings)


def _events(cast: str) -> tuple[dict, list[list]]:
    header, *events = (json.loads(line) for line in cast.splitlines())
    return header, events


def test_each_session_is_an_asciicast_v2_with_a_marker_per_step() -> None:
    done = replay.make(_run(), "ep")
    assert done is not None
    assert set(done.casts) == {"term1", "py"}
    header, events = _events(done.casts["term1"])
    assert header["version"] == 2
    assert (header["width"], header["height"]) == (replay.COLS, replay.ROWS)
    assert "idle_time_limit" not in header  # cut already, on the run's clock
    markers = [e[2] for e in events if e[1] == "m"]
    assert markers == ["step 1: sudo insmod m.ko", "step 3: sudo rmmod m"]
    assert [e[2] for e in _events(done.casts["py"])[1] if e[1] == "m"] == ["step 2: f.read()"]
    assert all(e[1] in ("o", "m") for e in events)


def test_idle_time_is_compressed_on_one_clock_for_every_session() -> None:
    done = replay.make(_run(), "ep")
    assert done is not None
    # The 40 s between the read and the rmmod become IDLE_LIMIT; both sessions agree.
    assert done.steps == {1: ("term1", 0.5), 2: ("py", 1.0), 3: ("term1", 2.0)}
    for cast in done.casts.values():
        times = [e[0] for e in _events(cast)[1]]
        assert times == sorted(times)
        assert times[-1] == done.duration  # every session lasts the whole run
    assert done.duration == 2.1


def test_a_run_without_recordings_has_no_replay(tmp_path: Path) -> None:
    bare = _run()
    bare.recordings = {}
    assert replay.make(bare, "ep") is None
    assert replay.page("ep", {"6.1": bare}, "") is None
    assert replay.files("ep", "ep", {"6.1": bare}) == {}
    replay.write(tmp_path, {})
    assert not (tmp_path / replay.REPLAY).exists()


def test_written_beside_the_pages(tmp_path: Path) -> None:
    replay.write(tmp_path, replay.files("ep", "ep", {"6.1": _run()}))
    cast = tmp_path / "replay" / "ep" / "6.1" / "py.cast"
    assert _events(cast.read_text())[0]["title"] == "ep: py, guest VM"
    script = (tmp_path / "replay" / "ep.js").read_text()
    assert script.startswith("window.kblogReplay = window.kblogReplay || {};\n")
    data = json.loads(script.split(" = ", 2)[-1].rstrip(";\n"))
    assert data["6.1"]["casts"]["py"] == cast.read_text()
    assert data["6.1"]["steps"]["2"] == ["py", 1.0]
    page = replay.page("ep", {"6.1": _run()}, "https://blog.example.org")
    assert page is not None
    assert page["script"] == "https://blog.example.org/replay/ep.js"
    assert page["kernels"][0]["accel"] == "TCG"
    assert [s["name"] for s in page["sessions"]] == ["term1", "py"]

"""python -m runner: its JSON output, and what it says about scenarios it cannot run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runnercli import cli
from vmhelp import ROOT, Guest, is_dead, py, qemu_children, rundirs, scenario, sh

from runner import config
from runner.__main__ import main


@pytest.mark.vm
def test_json_output(guest: Guest, tmp_path: Path) -> None:
    path = tmp_path / "cli.json"
    s = scenario(
        "cli",
        sh("t", "uname -r", ["@release@"]),
        sh("t", "echo kernel @release@", ["kernel ..."]),
        py("p", "print('a'); print('b')", ["a", "b"]),
        sh("t", "echo surprise", ["expected"]),
    )
    path.write_text(json.dumps(s.to_json()))
    done = cli(str(path), "--json", env={"KBLOG_BACKEND": "local"}, timeout=300)
    assert done.returncode == 1, done.stderr  # the last step's output differs
    result = json.loads(done.stdout)
    assert result["scenario"] == "cli"
    assert result["error"] == ""
    assert result["provenance"]["kernel"] == config.kernel(None).release
    steps = result["steps"]
    assert [s["index"] for s in steps] == [0, 1, 2, 3]
    assert [s["status"] for s in steps] == ["ok"] * 4
    assert [s["matched"] for s in steps] == [True, True, True, False]
    release = steps[0]["captures"]["release"]
    assert steps[1]["input"] == f"echo kernel {release}"
    assert steps[2]["output"] == "a\nb\n"
    assert steps[2]["prompt"] == ">>> "
    assert "-expected" in steps[3]["diff"] and "+surprise" in steps[3]["diff"]


@pytest.mark.vm
def test_ctrl_c_at_the_terminal(guest: Guest, tmp_path: Path) -> None:
    """Ctrl-C reaches the runner and its QEMU alike (one process group): exit 130, no leftovers."""
    path = tmp_path / "long.json"
    path.write_text(json.dumps(scenario("long", sh("t", "sleep 300", timeout=400)).to_json()))
    runner = subprocess.Popen(
        [sys.executable, "-m", "runner", str(path)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", KBLOG_BACKEND="local"),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert runner.stdout is not None
        for line in runner.stdout:
            if "guest up" in line:
                break
        qemus = qemu_children(runner.pid)
        assert len(qemus) == 1
        time.sleep(0.5)  # into the step
        os.killpg(runner.pid, signal.SIGINT)
        rest = runner.stdout.read()
        assert runner.wait(timeout=30) == 130
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert "interrupted" in rest
    assert is_dead(qemus[0].pid)
    assert rundirs(runner.pid) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "Expecting property name"),
        ('{"name": "x"}', "malformed scenario"),
        ('{"name": "x", "steps": [{"session": "t", "language": "console"}]}', "malformed scenario"),
        (
            '{"name": "x", "steps": [{"session": "t", "language": "bf", "input": "+",'
            ' "source": "x.md:3"}]}',
            "x.md:3: unknown language 'bf'",
        ),
    ],
    ids=["syntax", "no-steps", "step-without-input", "bad-language"],
)
def test_unusable_scenario_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: "), err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nowhere.json")]) == 2
    assert "No such file" in capsys.readouterr().err

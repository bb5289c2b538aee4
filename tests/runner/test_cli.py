"""python -m runner: its JSON output, and what it says about scenarios it cannot run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from minisite import MiniSite, tree_bytes
from runnercli import cli
from vmhelp import ROOT, TEST_KMOD, Guest, Proc, build, children, is_dead, py, rundirs, scenario, sh

from runner import config
from runner.__main__ import main
from runner.guest import vm
from runner.scenario import Step


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


# --- Ctrl-C -------------------------------------------------------------------------
#
# The terminal sends SIGINT to its whole foreground process group: here, a runner
# started in a session of its own, and os.killpg. Whatever the moment, the run ends
# with 130 and says "interrupted"; no QEMU, build shell or run dir is left.


@dataclass
class Interrupted:
    returncode: int
    output: str  # stdout and stderr, as the terminal showed them
    pid: int
    qemus: list[Proc]  # the QEMUs the run had when it was interrupted
    sandboxes: list[Proc]  # and its build sandboxes (bwrap)
    qemu_groups: list[int]  # their process groups, at that moment


def interrupt_run(
    argv: list[str],
    *,
    after_line: str = "",
    after_child: str = "",
    children_wanted: int = 1,
    delay: float = 0.0,
    env: dict[str, str] | None = None,
    inherit_ignored: bool = False,
    cwd: Path = ROOT,
) -> Interrupted:
    """Start `argv`, wait for a line of its output that holds `after_line` and/or for
    `children_wanted` children of its named `after_child` (a comm prefix), then
    `delay` seconds, then send SIGINT to its process group. `inherit_ignored`: start
    it with SIGINT ignored, as a background job of a script is."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", KBLOG_BACKEND="local")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if inherit_ignored else None
    try:
        runner = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**full_env, **(env or {})},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert runner.stdout is not None
        for line in runner.stdout:
            lines.append(line)
            if after_line and after_line in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        if after_line:
            assert seen.wait(120), f"never printed {after_line!r}:\n{''.join(lines)}"
        while after_child and time.monotonic() < deadline:
            found = [p for p in _owned(runner.pid) if p.comm.startswith(after_child)]
            if len(found) >= children_wanted:
                break
            time.sleep(0.01)
        else:
            assert not after_child, f"no {after_child} started:\n{''.join(lines)}"
        time.sleep(delay)
        kids = _owned(runner.pid)
        qemus = [p for p in kids if p.comm.startswith("qemu-system")]
        groups = [_pgid(p.pid) for p in qemus]
        os.killpg(runner.pid, signal.SIGINT)
        returncode = runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        reader.join(timeout=10)
    sandboxes = [p for p in kids if p.comm == "bwrap" or _has_bwrap_child(p.pid)]
    return Interrupted(returncode, "".join(lines), runner.pid, qemus, sandboxes, groups)


def _owned(pid: int) -> list[Proc]:
    """The children a run owns: guests and build sandboxes, not `qemu --version`."""
    owned = []
    for p in children(pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
            if p.comm != "qemu-system-x86" or b"-kernel" in argv:
                owned.append(p)
    return owned


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def _has_bwrap_child(pid: int) -> bool:
    return any(p.comm == "bwrap" for p in children(pid))


def assert_interrupted(done: Interrupted, qemus: int | None = None) -> None:
    """Exit 130, "interrupted" said, and nothing the run owned left behind."""
    shown = f"the run printed:\n{done.output}"
    assert done.returncode == 130, shown
    assert "interrupted" in done.output, shown
    assert "lost" not in done.output, shown  # never reported as a lost guest
    if qemus is not None:
        assert len(done.qemus) == qemus, shown
    # Out of the terminal's process group: Ctrl-C does not kill QEMU behind the runner's back.
    assert all(group not in (done.pid, -1) for group in done.qemu_groups), shown
    for p in [*done.qemus, *done.sandboxes]:
        assert is_dead(p.pid), f"{p} outlived the run; {shown}"
    assert rundirs(done.pid) == [], shown
    assert sorted(vm.runtime_dir().glob(f"build-{done.pid}-*")) == [], shown


LONG = 400  # a step's timeout: the steps sleep far longer than any test waits
DISPOSITIONS = pytest.mark.parametrize(
    "inherit_ignored", [False, True], ids=["terminal", "background-job"]
)


def _runner_cli(tmp_path: Path, *steps: Step) -> list[str]:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario("long", *steps).to_json()))
    return [sys.executable, "-m", "runner", str(path)]


@pytest.mark.vm
@DISPOSITIONS
def test_ctrl_c_in_a_build_step_before_any_guest(
    guest: Guest, tmp_path: Path, inherit_ignored: bool
) -> None:
    argv = _runner_cli(tmp_path, build("sleep 300", timeout=LONG), sh("t", "echo hi", ["hi"]))
    done = interrupt_run(argv, after_child="bwrap", delay=0.3, inherit_ignored=inherit_ignored)
    assert_interrupted(done, qemus=0)
    assert done.sandboxes, done.output


@pytest.mark.vm
@DISPOSITIONS
def test_ctrl_c_while_the_saved_guest_is_restored(
    guest: Guest, tmp_path: Path, inherit_ignored: bool
) -> None:
    argv = _runner_cli(tmp_path, sh("t", "sleep 300", timeout=LONG))
    # At once: a restore takes 0.1 to 0.5 s, so the signal comes while it runs.
    done = interrupt_run(argv, after_child="qemu-system", inherit_ignored=inherit_ignored)
    assert_interrupted(done, qemus=1)


@pytest.mark.vm
@DISPOSITIONS
def test_ctrl_c_while_the_guest_boots_cold(
    guest: Guest, tmp_path: Path, inherit_ignored: bool
) -> None:
    argv = _runner_cli(tmp_path, sh("t", "sleep 300", timeout=LONG))
    done = interrupt_run(
        argv,
        after_child="qemu-system",
        delay=1.0,  # a cold boot takes 6 s or more under TCG
        env={"KBLOG_SNAPSHOTS": "0"},
        inherit_ignored=inherit_ignored,
    )
    assert_interrupted(done, qemus=1)


@pytest.mark.vm
@DISPOSITIONS
def test_ctrl_c_at_the_terminal(guest: Guest, tmp_path: Path, inherit_ignored: bool) -> None:
    """In a guest step."""
    argv = _runner_cli(tmp_path, sh("t", "sleep 300", timeout=LONG))
    done = interrupt_run(argv, after_line="guest up", delay=0.5, inherit_ignored=inherit_ignored)
    assert_interrupted(done, qemus=1)


@pytest.mark.vm
@DISPOSITIONS
def test_ctrl_c_in_a_build_step_while_the_guest_runs(
    guest: Guest, tmp_path: Path, inherit_ignored: bool
) -> None:
    argv = _runner_cli(
        tmp_path,
        sh("t", "echo hi", ["hi"]),
        build("sleep 300", timeout=LONG),
        sh("t", "echo hi", ["hi"]),
    )
    done = interrupt_run(argv, after_line="step 1/3", delay=0.5, inherit_ignored=inherit_ignored)
    assert_interrupted(done, qemus=1)
    assert done.sandboxes, done.output


@pytest.mark.vm
def test_ctrl_c_in_invoke_run(guest: Guest) -> None:
    """invoke itself exits 1 on a KeyboardInterrupt: the task says 130."""
    invoke = str(Path(sys.executable).parent / "invoke")
    argv = [invoke, "run", "--post", "content/ep2-kernel-segfaults.md"]
    done = interrupt_run(argv, after_line="guest up", delay=0.3, inherit_ignored=True)
    assert_interrupted(done, qemus=1)


@pytest.mark.vm
def test_ctrl_c_in_a_bundle_s_reproduce(guest: Guest, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "kmod").symlink_to(TEST_KMOD)
    (bundle / "scenario.json").write_text(
        json.dumps(scenario("long", sh("t", "sleep 300", timeout=LONG)).to_json())
    )
    argv = [sys.executable, "-m", "runner.reproduce", str(bundle), "--backend", "local"]
    done = interrupt_run(argv, after_line="guest up", delay=0.5)
    assert_interrupted(done, qemus=1)


# A site build as `invoke build` makes it (tasks.py), of a MiniSite (tests/minisite.py).
SITE_BUILD = """
import sys
from pathlib import Path

from invoke.exceptions import Exit
from minisite import MiniSite

import tasks

try:
    tasks._interruptible(MiniSite(Path(sys.argv[1])).build)()
except Exit as exc:  # as invoke reports it
    print(exc.message, file=sys.stderr)
    sys.exit(exc.code)
"""


@pytest.mark.vm
def test_ctrl_c_in_a_site_build_with_posts_running_in_parallel(
    guest: Guest, tmp_path: Path
) -> None:
    """Two stale posts run at once, in threads that never see the KeyboardInterrupt:
    both stop, and snippets/ and output/ stay as they were."""
    site = MiniSite(tmp_path / "site")
    site.content.mkdir(parents=True)
    (site.root / "kmod").symlink_to(ROOT / "kmod")
    for name in ("one", "two"):
        site.add(
            f"{name}.md",
            f"Title: {name}\nDate: 2026-11-02\nSlug: {name}\n\n"
            f"```{{.console session=t timeout={LONG}}}\n$ sleep 300\n```\n",
        )
    site.snippets.mkdir()
    (site.snippets / "other.json").write_text("{}\n")
    site.output.mkdir()
    (site.output / "index.html").write_text("the last good build\n")
    before = (tree_bytes(site.snippets), tree_bytes(site.output))
    script = tmp_path / "build.py"
    script.write_text(SITE_BUILD)
    done = interrupt_run(
        [sys.executable, str(script), str(site.root)],
        after_child="qemu-system",
        children_wanted=2,
        delay=1.0,
        env={"PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("", "plugins", "tests"))},
    )
    assert_interrupted(done, qemus=2)
    assert (tree_bytes(site.snippets), tree_bytes(site.output)) == before
    # No staging directory left; build/ holds only the lock one build at a time takes.
    assert sorted(p.name for p in site.root.iterdir()) == [
        "build",
        "content",
        "kmod",
        "output",
        "snippets",
    ]
    assert [p.name for p in (site.root / "build").iterdir()] == [".lock"]


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


def _gdbs() -> list[int]:
    """The runner's gdbs (their machine interface) on this machine, whoever owns them."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ours = argv[0].endswith(b"gdb") and b"--interpreter=mi3" in argv
            if entry.name.isdigit() and ours and not is_dead(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.mark.vm
def test_ctrl_c_while_gdb_waits_for_a_breakpoint(guest: Guest, tmp_path: Path) -> None:
    """gdb holds a continue that never stops: Ctrl-C ends the run, gdb and the guest."""
    gdb = {"session": "dbg", "language": "gdb"}
    argv = _runner_cli(
        tmp_path,
        Step(**gdb, input="hbreak *0xffffffff81000000", expected=["..."]),  # type: ignore[arg-type]
        Step(**gdb, input="continue", output="later"),  # type: ignore[arg-type]
        Step(**gdb, input="continue", output="collect", timeout=LONG),  # type: ignore[arg-type]
    )
    before = _gdbs()
    done = interrupt_run(argv, after_child="gdb", delay=3.0)
    assert_interrupted(done, qemus=1)
    assert [pid for pid in _gdbs() if pid not in before] == [], done.output

"""The build sandbox: its argv as data, then real bubblewrap runs (no VM needed).

The real runs build a module against the guest kernel's headers exactly as a
reader would, and try what a hostile or careless snippet would: write outside
its tree, reach a server on this machine, outlive the runner.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import config, sandbox
from runner.guest import image as guest_image
from runner.guest import vm

ROOT = Path(__file__).resolve().parents[2]
AS_ROOT = os.geteuid() == 0


def _layout(tmp: Path, headers: Path) -> sandbox.Layout:
    return sandbox.Layout("6.1.0-56-amd64", headers, tmp / "work", tmp / "state")


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_argv_binds_only_the_tree_writable(tmp_path: Path) -> None:
    argv = sandbox.argv(_layout(tmp_path, Path("/h")), ["bash"], as_root=False)
    assert argv[0] == "bwrap"

    assert _pairs(argv, "--bind") == [(str(tmp_path / "work"), "/home/user")]
    for flag in ("--unshare-all", "--die-with-parent"):
        assert flag in argv
    assert ("/h/usr/src", "/usr/src") in _pairs(argv, "--ro-bind")
    assert argv[argv.index("--uid") + 1] == "1000"
    assert argv[-2:] == ["--", "bash"]
    # Nothing of the host's /usr/local (tools installed by hand) is seen.
    assert all(not s.startswith("/usr/local") for s, _ in _pairs(argv, "--ro-bind"))


def test_argv_as_root_drops_to_an_unprivileged_user(tmp_path: Path) -> None:
    layout = _layout(tmp_path, Path("/h"))
    argv = sandbox.argv(layout, ["bash"], as_root=True)
    uid = str(sandbox.SANDBOX_UID)
    handover = argv.index("setpriv")
    assert argv[handover : handover + 7] == [
        "setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--",
    ]  # fmt: skip
    assert argv[handover + 7] == "bwrap"
    # Before it, root mounts our files where nobody can reach them, and the sandbox
    # binds them from there: the kernel's headers, the accounts, the tree (writable).
    outer, inner = argv[:handover], argv[handover:]
    assert "--unshare-pid" in outer
    for option, ours, inside in [
        ("--ro-bind", "/h/usr/src", "/usr/src"),
        ("--ro-bind", str(tmp_path / "state" / "passwd"), "/etc/passwd"),
        ("--bind", str(tmp_path / "work"), "/home/user"),
    ]:
        (point,) = [p for src, p in _pairs(outer, option) if src == ours]
        assert point.startswith(sandbox.STAGE + "/")
        assert (point, inside) in _pairs(inner, option)
        assert ours not in inner


def test_argv_mounts_read_only_trees_over_the_tree(tmp_path: Path) -> None:
    """A kernel source at ~/linux: mounted after the home, or the home would hide it."""
    source = tmp_path / "src"
    lay = dataclasses.replace(
        _layout(tmp_path, Path("/h")), read_only=((source, "/home/user/linux"),)
    )
    argv = sandbox.argv(lay, ["make"], as_root=False)
    assert (str(source), "/home/user/linux") in _pairs(argv, "--ro-bind")
    assert argv.index(str(source)) > argv.index(str(tmp_path / "work"))
    assert _pairs(argv, "--bind") == [(str(tmp_path / "work"), "/home/user")]
    assert argv[-2:] == ["--", "make"]


# --- real runs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def headers() -> Path:
    return guest_image.headers_root(config.kernel("6.1"))


@pytest.fixture
def layout(headers: Path) -> Iterator[sandbox.Layout]:
    top = Path(tempfile.mkdtemp(prefix=f"build-{os.getpid()}-", dir=vm.runtime_dir()))
    shutil.copytree(ROOT / "kmod", top / "work")
    lay = sandbox.Layout(config.kernel("6.1").release, headers, top / "work", top / "state")
    sandbox.prepare(lay, as_root=AS_ROOT)
    yield lay
    shutil.rmtree(top)


def _run(lay: sandbox.Layout, script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        sandbox.argv(lay, ["bash", "-c", script], AS_ROOT),
        env=sandbox.env(lay, {"LANG": "C.UTF-8"}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_reader_s_build(layout: sandbox.Layout) -> None:
    proc = _run(layout, "whoami; echo $HOME; pwd; uname -r; cd chardev && make")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["user", "/home/user", "/home/user", layout.release]
    assert lines[4] == (
        f"make -C /lib/modules/{layout.release}/build M=/home/user/chardev  modules"
    )
    assert f"make[1]: Entering directory '/usr/src/linux-headers-{layout.release}'" in lines
    assert "  LD [M]  /home/user/chardev/chardev_noref.ko" in lines
    assert (layout.tree / "chardev" / "chardev_noref.ko").is_file()
    # Nothing of this machine's paths shows.
    assert str(layout.tree) not in proc.stdout and str(ROOT) not in proc.stdout


def test_a_cache_the_sandbox_user_cannot_walk(layout: sandbox.Layout, tmp_path: Path) -> None:
    """A reader's cache in a private home (/root, say): root stages the kernel's trees."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    headers = private / "headers"
    subprocess.run(["cp", "-al", str(layout.headers_root), str(headers)], check=True)
    moved = sandbox.Layout(layout.release, headers, layout.tree, layout.state)
    proc = _run(moved, "cd hello && make")
    assert proc.returncode == 0, proc.stderr
    assert "  LD [M]  /home/user/hello/hello.ko" in proc.stdout.splitlines()


def test_writes_outside_the_tree_fail_and_change_nothing(layout: sandbox.Layout) -> None:
    target = Path("/etc/kblog-sandbox-probe")
    scratch = Path("/tmp/kblog-sandbox-probe")
    for path in (target, scratch):
        path.unlink(missing_ok=True)
    proc = _run(layout, f"touch {target}; echo $?; echo x > {scratch} && echo wrote-tmp")
    assert "Read-only file system" in proc.stderr
    assert proc.stdout.split() == ["1", "wrote-tmp"]  # its /tmp is its own
    assert not target.exists() and not scratch.exists()
    # The repository and the cache are not even there to be written.
    proc = _run(layout, f"ls {ROOT} {config.cache_dir()}")
    assert proc.returncode != 0 and "No such file or directory" in proc.stderr


def test_a_read_only_tree_inside_the_home(layout: sandbox.Layout) -> None:
    source = layout.tree.parent / "src"  # where the sandbox's user may traverse
    source.mkdir()
    (source / "Makefile").write_text("all:\n")
    lay = dataclasses.replace(layout, read_only=((source, f"{sandbox.home(layout)}/linux"),))
    proc = _run(lay, "cat linux/Makefile; touch linux/new; echo $?; touch mine && echo wrote")
    assert proc.stdout.split() == ["all:", "1", "wrote"]
    assert "Read-only file system" in proc.stderr
    assert not (source / "new").exists() and (layout.tree / "mine").exists()


def test_no_network(layout: sandbox.Layout) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        server.settimeout(3)
        proc = _run(layout, f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected")
        assert "connected" not in proc.stdout
        with pytest.raises(socket.timeout):
            server.accept()  # nothing arrived


def test_no_privilege(layout: sandbox.Layout) -> None:
    """Seen from this machine, the sandbox's shell is nobody, with no capability."""
    duration = f"{30 + os.getpid() % 97}.75"  # no other sleep here has this one
    proc = subprocess.Popen(
        sandbox.argv(layout, ["sleep", duration], as_root=AS_ROOT), env=sandbox.env(layout, {})
    )
    try:
        deadline = time.monotonic() + 10
        sleeper = None
        while time.monotonic() < deadline and sleeper is None:
            sleeper = next(
                (p for p in _pids_named("sleep") if _cmdline(p) == f"sleep {duration}"), None
            )
            time.sleep(0.05)
        assert sleeper is not None
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{sleeper}/status").read_text().splitlines()
        )
        uids = status["Uid"].split()
        assert set(uids) == {str(sandbox.SANDBOX_UID if AS_ROOT else os.getuid())}
        assert "0" not in uids
        assert status["CapEff"].strip() == "0000000000000000"
        assert status["CapBnd"].strip() == "0000000000000000"
    finally:
        proc.kill()
        proc.wait()


def test_killed_with_its_runner(layout: sandbox.Layout, tmp_path: Path) -> None:
    """A runner killed with SIGKILL (no cleanup at all) takes the sandbox along."""
    # A duration no other process on this machine is likely to sleep for.
    sleeper = f"sleep {300 + os.getpid() % 997}.25"
    argv = sandbox.argv(layout, ["bash", "-c", f"{sleeper} & echo $! ; wait"], as_root=AS_ROOT)
    # A stand-in runner: a python that starts the sandbox, then waits to be killed.
    runner = subprocess.Popen(
        ["python3", "-c", "import subprocess, sys; subprocess.Popen(sys.argv[1:]); input()", *argv],
        stdin=subprocess.PIPE,
        env=sandbox.env(layout, {}),
    )
    deadline = time.monotonic() + 10
    sleepers: list[int] = []
    while time.monotonic() < deadline and not sleepers:
        sleepers = [p for p in _pids_named("sleep") if _cmdline(p) == sleeper]
        time.sleep(0.1)
    assert sleepers, "the sandboxed sleep never started"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_cmdline(p) == sleeper for p in sleepers):
        time.sleep(0.1)
    assert not any(_cmdline(p) == sleeper for p in sleepers)


def _pids_named(comm: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""

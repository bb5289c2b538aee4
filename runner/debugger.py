"""gdb on the running guest kernel, driven over its machine interface (MI).

One `Debugger` is one gdb session of a post (a `.gdb` block's `session=`). gdb runs
outside the guest, in the build sandbox where the run has one (the reader's paths:
~/build/vmlinux, and nothing of the host but the stub's socket), attached to QEMU's
gdbstub through the unix socket of the run's VM (runner/guest/vm.py), so nothing
listens on a port of the host. Each typed line
goes to gdb's own command interpreter (`-interpreter-exec console`), so the page
shows what gdb prints to a person; the MI records around it say when a command
ended, failed, or set the guest running.

The guest is stopped whenever gdb has the prompt, as it is for a person: attaching
stops it, and only `continue` (or `step`, `finish`, ...) lets it run until gdb
reports a stop. What this module guarantees is that no guest is left stopped behind
the run's back: `release()` detaches (the guest goes on); a gdb that no longer
answers is killed and the guest resumed over QMP (`cont`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner.guest.qmp import QMP, QMPError
from runner.scenario import GDB_PROMPT

PROMPT = GDB_PROMPT  # what a gdb step shows before its input on the page
# How long gdb may take to attach, detach or take an interrupt: all local.
CONTROL_TIMEOUT = 10.0
TICK = 0.5  # how often a wait for the guest to stop says it still waits
# Set before anything else: no pager or line wrapping in what the page shows, no
# question gdb would wait on, and a breakpoint on a name gdb does not know is an
# error (not a "pending" one that silently never hits).
SETUP = (
    "-gdb-set pagination off",
    "-gdb-set width 0",
    "-gdb-set height 0",
    "-gdb-set confirm off",
    "-gdb-set breakpoint pending off",
)


class DebuggerError(RuntimeError):
    """gdb could not be started, attached or controlled."""


def gdb_binary() -> str:
    path = shutil.which("gdb")
    if path is None:
        raise DebuggerError("gdb not found: install Debian's gdb (runner/host-packages.txt)")
    return path


# Where a sandboxed gdb finds the stub's socket (bound there by the runner).
SOCKET_INSIDE = "/run/kblog/gdb.sock"


def argv(symbols: str | None) -> list[str]:
    """gdb's command line: the machine interface, no init files, quiet; the kernel
    image whose symbols it reads, where the guest runs one the post built."""
    args = [gdb_binary()]
    args += ["--interpreter=mi3"]  # records a program can read, one per line
    args += ["-nx"]  # no ~/.gdbinit nor system init: every run starts the same
    args += ["-q"]  # no banner
    if symbols is not None:
        args += [symbols]
    return args


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b", "a": "\a"}


def c_string(text: str) -> str:
    """The value of an MI c-string (the quotes included in `text`)."""
    body = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    out: list[str] = []
    raw = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567":
                m = re.match(r"[0-7]{1,3}", body[i + 1 :])
                assert m is not None
                raw.append(int(m.group(0), 8))  # gdb escapes bytes of UTF-8 one by one
                i += 1 + len(m.group(0))
                continue
            if raw:
                out.append(raw.decode("utf-8", errors="replace"))
                raw.clear()
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if raw:
            out.append(raw.decode("utf-8", errors="replace"))
            raw.clear()
        out.append(ch)
        i += 1
    if raw:
        out.append(raw.decode("utf-8", errors="replace"))
    return "".join(out)


def mi_quote(text: str) -> str:
    """A string as an MI command argument."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field(record: str, name: str) -> str:
    """One c-string field of a result record (msg="...", reason="...")."""
    m = re.search(rf'(?:^|,|\{{){name}=("(?:[^"\\]|\\.)*")', record)
    return c_string(m.group(1)) if m else ""


def _gdb_pid(top: int) -> int | None:
    """gdb's pid: `top` itself, or, in the sandbox, the process below it named gdb
    (bubblewrap passes no signal on)."""
    parents: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        names[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    todo = [top]
    while todo:
        pid = todo.pop()
        if names.get(pid) == "gdb":
            return pid
        todo += parents.get(pid, [])
    return None


@dataclass
class Reply:
    """What one command gave: gdb's console text, and how it ended."""

    output: str
    state: str  # "done", "running", "error", "" (no answer before the deadline)
    error: str = ""  # gdb's own message, for state "error"
    stop: str = ""  # the *stopped record that ended a wait, if one did


@dataclass
class Debugger:
    """One gdb process attached to one guest; see the module's docstring."""

    command: list[str]  # gdb's argv (argv()), wrapped in the sandbox's where it runs there
    target: str  # QEMU's gdbstub socket (-gdb chardev:...), as gdb sees it
    qmp_socket: Path  # QEMU's monitor: resumes the guest if gdb cannot
    cwd: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    running: bool = False  # the guest runs under gdb: a stop is awaited
    attached: bool = False  # gdb holds the guest (until `detach`, `disconnect`, `kill`)
    points: dict[str, str] = field(default_factory=dict)  # breakpoint number -> where
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _token: int = 0

    # --- the process ----------------------------------------------------------
    def start(self, deadline: float) -> None:
        """Start gdb and attach it; the guest is stopped when this returns."""
        from runner.guest.vm import DIE_WITH_PARENT_ARGV  # its one definition

        self.proc = subprocess.Popen(
            [*DIE_WITH_PARENT_ARGV, *self.command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=self.env,
            # Its own session: a Ctrl-C at the runner's terminal is the runner's to
            # handle; gdb's interrupts are sent to it alone (SIGINT below).
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True, name="gdb-mi").start()
        self._until_prompt(deadline)  # gdb says (gdb) once it reads commands
        for command in SETUP:
            reply = self.mi(command, deadline)
            if reply.state != "done":
                raise DebuggerError(f"gdb refused {command!r}: {reply.error or reply.state}")
        reply = self.mi(f"-target-select remote {self.target}", deadline)
        if reply.state not in ("done", "connected"):
            raise DebuggerError(
                f"gdb could not attach to the guest's gdbstub: {reply.error or 'no answer'}"
            )

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        self._lines.put(None)  # gdb is gone

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _next(self, deadline: float) -> str | None:
        """The next line gdb wrote, "" at the deadline; None once gdb is gone."""
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ""

    def _until_prompt(self, deadline: float) -> None:
        while True:
            line = self._next(deadline)
            if line is None:
                raise DebuggerError(f"gdb exited with status {self._status()} before its prompt")
            if line == "":
                raise DebuggerError("gdb showed no prompt")
            if line.startswith("(gdb)"):
                return

    def _status(self) -> str:
        if self.proc is None:
            return "?"
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        return str(self.proc.returncode)

    # --- commands -------------------------------------------------------------
    def mi(self, command: str, deadline: float, echo: str | None = None) -> Reply:
        """Send one MI command and read until its result record (and, for one that
        set the guest running, no further: wait_stop() reads the stop)."""
        assert self.proc is not None and self.proc.stdin is not None
        self._token += 1
        token = str(self._token)
        try:
            self.proc.stdin.write(f"{token}{command}\n".encode())
            self.proc.stdin.flush()
        except OSError:
            return Reply("", "", "gdb is gone")
        out: list[str] = []
        while True:
            line = self._next(deadline)
            if line is None:
                return Reply("".join(out), "", f"gdb exited with status {self._status()}")
            if line == "":
                return Reply("".join(out), "")
            if line.startswith(f"{token}^"):
                state = line[len(token) + 1 :].split(",", 1)[0]
                if state == "running":
                    self.running = True
                error = _field(line, "msg") if state == "error" else ""
                text = "".join(out)
                if error and error not in text:  # a person sees it on gdb's terminal
                    text += error + "\n"
                return Reply(text, state, error)
            if line.startswith("&") and echo is not None and c_string(line[1:]) == echo + "\n":
                echo = None  # gdb repeating the command: no output of it
                continue
            out.append(self._shown(line))

    def _shown(self, line: str) -> str:
        """What one line gdb wrote puts on its terminal: its console and log streams
        (output, warnings, errors of a sourced script) and any line that is no MI
        record at all; records of state are noted instead, the prompt dropped."""
        if line[:1] in ("~", "&", "@"):
            return c_string(line[1:])
        if line[:1] in ("*", "=") or line.startswith("(gdb)"):
            self._note(line)
            return ""
        if re.match(r"\d*\^", line):  # the result of an earlier, abandoned command
            return ""
        return line + "\n"

    def _note(self, line: str) -> None:
        """What an asynchronous record says of the guest's state."""
        if line.startswith("*stopped"):
            self.running = False
        elif line.startswith("*running"):
            self.running = True
        elif line.startswith("=thread-group-started"):
            self.attached = True
        elif line.startswith("=thread-group-exited"):
            self.attached, self.running = False, False
        elif line.startswith("=breakpoint-created"):
            self.points[_field(line, "number")] = _field(line, "original-location")
        elif line.startswith("=breakpoint-deleted"):
            self.points.pop(_field(line, "id"), None)

    @property
    def breakpoints(self) -> list[str]:
        """Where the session's breakpoints are, as they were typed."""
        return [where for where in self.points.values() if where]

    def console(self, text: str, deadline: float) -> Reply:
        """A line typed at gdb's own command line."""
        return self.mi(f"-interpreter-exec console {mi_quote(text)}", deadline, echo=text)

    def wait_stop(self, deadline: float, tick: Callable[[], None] = lambda: None) -> Reply:
        """What gdb printed until the guest stopped (a breakpoint, the end of a step),
        or state "" at the deadline with the guest still running; `tick` is called
        about every TICK seconds meanwhile (the live display)."""
        out: list[str] = []
        while True:
            line = self._next(min(deadline, time.monotonic() + TICK))
            if line == "" and time.monotonic() < deadline:
                tick()
                continue
            if line is None:
                return Reply("".join(out), "", f"gdb exited with status {self._status()}")
            if line == "":
                return Reply("".join(out), "")
            if line.startswith("*stopped"):
                self._note(line)
                # The location gdb prints at a stop follows the record.
                out.append(self._drain(time.monotonic() + 0.5))
                return Reply("".join(out), "stopped", stop=line)
            out.append(self._shown(line))

    def _drain(self, deadline: float) -> str:
        """Console text up to the (gdb) that follows a stop."""
        out: list[str] = []
        while True:
            line = self._next(deadline)
            if not line or line.startswith("(gdb)"):
                return "".join(out)
            out.append(self._shown(line))

    def interrupt(self, deadline: float) -> bool:
        """Stop a running guest as Ctrl-C at gdb does: SIGINT to gdb itself (while a
        typed `continue` runs, gdb reads no command, so -exec-interrupt would wait
        unread). Whether the guest stopped."""
        if not self.running or self.proc is None:
            return True
        pid = _gdb_pid(self.proc.pid)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        return self.wait_stop(deadline).state == "stopped"

    # --- the end --------------------------------------------------------------
    def release(self) -> str:
        """Detach and end gdb; the guest goes on. Returns what had to be forced, ""
        if gdb did it all itself."""
        forced = ""
        deadline = time.monotonic() + CONTROL_TIMEOUT
        if self.alive() and self.attached:
            stopped = self.interrupt(deadline)
            detached = stopped and self.mi("-target-detach", deadline).state == "done"
            if not detached:
                forced = "gdb did not detach"
        if self.alive() and not forced:
            self.mi("-gdb-exit", deadline)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=CONTROL_TIMEOUT)  # type: ignore[union-attr]
        self.kill()
        if forced or (self.proc is not None and self.proc.returncode not in (0, None)):
            forced = self._resume_over_qmp(forced or "gdb ended")
        return forced

    def _resume_over_qmp(self, why: str) -> str:
        """The guest resumed by QEMU itself, whatever gdb left it in."""
        try:
            qmp = QMP(self.qmp_socket, timeout=CONTROL_TIMEOUT)
        except (OSError, QMPError) as exc:
            return f"{why}; QEMU's monitor did not answer either ({exc})"
        try:
            qmp.command("cont")
        except (OSError, QMPError) as exc:
            return f"{why}; QEMU refused to resume the guest ({exc})"
        finally:
            qmp.close()
        return f"{why}: the guest was resumed through QEMU's monitor"

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()
        self.proc.wait(timeout=10)

"""Terminals as a person sees them: a program on a pty, fed one line at a time.

Shells and Python sessions are started with prompts that carry an invisible
marker, an OSC escape sequence (ESC ] 777 ; kblog ; KIND ; STATUS BEL). The pty
echoes whatever is typed, even to a process that is dead, so completion is only
ever read from a marker the program itself printed, never from the echo.
KIND is P for a fresh prompt and C for a continuation prompt; STATUS is the
shell's `$?`, empty for Python.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import pty
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from runner.scenario import GDB_PROMPT

MARKER = re.compile(rb"\x1b\]777;kblog;([PC]);(-?\d*)\x07")
# Terminal control sequences a dumb terminal would not show. An OSC's text stops at
# the next ESC: else each unended "ESC ]" scans to the end of the output, and a
# program printing them by the million holds the host in the regex for hours.
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*\x07")

LINE_LIMIT = 160  # characters of a latest line shown while a step runs
TAIL_BYTES = 4096  # how far back the latest line is looked for

# The most a terminal keeps between two prompts: one step's output. Far above what a
# post shows (a kernel build's log is ~100 kB), small enough that a program printing
# without end (`yes`) fails fast and neither the host's memory nor a page grows with it.
OUTPUT_LIMIT = 2 << 20
# Past the limit, only this much of the newest output is kept, where the prompt that
# follows an interrupt is looked for.
SPILL_WINDOW = 64 << 10
# A marker is shorter: an unfinished one at the end of the buffer starts within this.
MARKER_SPAN = 64

# A session's recording (what a replay shows) keeps output in frames: what arrives
# within FRAME_SECONDS of a frame's start joins it. A reader's eye sees no finer
# steps, and a build's thousands of small writes stay a few hundred events.
FRAME_SECONDS = 0.05
# The most of one step's output a recording keeps: a replay shows a kernel build
# scrolling by, not its whole log (the step's output keeps that); the rest is cut
# with a line that says so.
RECORD_STEP_LIMIT = 128 << 10
RECORD_CUT = "\r\n[kblog: the replay leaves out the rest of this step's output]\r\n"

SHELL_PROMPTS = {"P": "$ ", "C": "> "}
PYTHON_PROMPTS = {"P": ">>> ", "C": "... "}


GDB_PROMPTS = {"P": GDB_PROMPT, "C": ">"}  # gdb continues no input of ours


def prompts_for(language: str) -> dict[str, str]:
    """The prompts a step's terminal shows, by the step's language (console, pycon, gdb)."""
    return {"pycon": PYTHON_PROMPTS, "gdb": GDB_PROMPTS}.get(language, SHELL_PROMPTS)


def shell_env(path: str, prompt: str = r"\$") -> dict[str, str]:
    """Environment of a bash session whose prompts carry the marker."""
    return {
        "PATH": path,
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "PS1": r"\e]777;kblog;P;$?\a" + prompt + " ",
        "PS2": r"\e]777;kblog;C;\a> ",
    }


SHELL_ARGV = ["bash", "--noprofile", "--norc", "--noediting", "-i"]


def python_env(path: str, startup: str) -> dict[str, str]:
    return {"PATH": path, "TERM": "dumb", "LANG": "C.UTF-8", "PYTHONSTARTUP": startup}


PYTHON_ARGV = ["python3", "-q", "-i"]


@dataclass
class Prompt:
    kind: str  # "P" or "C"
    status: int | None  # the shell's $? for P prompts

    @property
    def program(self) -> str:
        """Which kind of program printed it (a Step's kind): a shell's prompt always
        carries its $?, a Python's never does."""
        return "python" if self.status is None else "shell"


@dataclass
class Exchange:
    """One line typed and what came back before the next prompt."""

    raw: str  # everything the terminal showed after the line was typed
    prompt: Prompt | None  # None: no prompt came back in time
    # The output went past OUTPUT_LIMIT: raw holds its first OUTPUT_LIMIT bytes only
    # (with a prompt: and what came with that prompt, the rest lost between).
    overflow: bool = False


class Recording:
    """A session's output as it arrived, in time: what a replay of the run shows.

    Times are seconds on the monotonic clock from `origin`, which every session of a
    run shares, so that their recordings line up. Events are [time, "o", text] for
    output and [time, "m", label] for the start of a step; text is decoded as it
    comes (a character split between two reads stays whole), prompt markers and all,
    as a terminal would have been sent them."""

    def __init__(self, origin: float, step_limit: int = RECORD_STEP_LIMIT) -> None:
        self.origin = origin
        self.step_limit = step_limit
        self.events: list[list[float | str]] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._frame_start = -1.0  # when the last output frame began; -1: none open
        self._step_bytes = 0  # output of the current step so far, kept or not
        self._lock = threading.Lock()

    def _now(self) -> float:
        return round(time.monotonic() - self.origin, 3)

    def output(self, data: bytes) -> None:
        with self._lock:
            room = self.step_limit - self._step_bytes
            self._step_bytes += len(data)
            if room <= 0:
                return
            text = self._decoder.decode(data[:room])
            if len(data) > room:  # cut here, once per step
                text += self._decoder.decode(b"", final=True) + RECORD_CUT
                self._decoder.reset()
            if not text:
                return
            now = self._now()
            last = self.events[-1] if self.events else None
            if last is not None and last[1] == "o" and now - self._frame_start < FRAME_SECONDS:
                last[2] = str(last[2]) + text
                return
            self._frame_start = now
            self.events.append([now, "o", text])

    def mark(self, label: str) -> None:
        """A step starts: its marker, and its output counted afresh against the limit."""
        with self._lock:
            self._step_bytes = 0
            self._frame_start = -1.0
            self.events.append([self._now(), "m", label])


class Terminal:
    """The host's view of one terminal; bytes arrive by `feed`, input leaves by `write`."""

    def __init__(
        self,
        name: str,
        write: Callable[[bytes], None],
        limit: int = OUTPUT_LIMIT,
        recording: Recording | None = None,
    ) -> None:
        self.name = name
        self.recording = recording  # where output also goes, with its time
        self.write = write  # where typed bytes go; a LocalPty points it at its pty
        self.limit = limit
        self._buf = bytearray()  # what came since the last prompt taken, up to `limit`
        self._scan = 0  # no marker starts in _buf before this
        # Past the limit: the newest bytes, and how many came in all since the limit.
        self._spill = bytearray()
        self._spilled = 0
        self.received = 0  # bytes fed in all, kept or not
        self._cond = threading.Condition()
        self.exit_status: int | None = None
        self.closed = False

    @property
    def overflowed(self) -> bool:
        """Whether what came since the last prompt taken went past the limit."""
        with self._cond:
            return self._spilled > 0

    def feed(self, data: bytes) -> None:
        if self.recording is not None:
            self.recording.output(data)
        with self._cond:
            self.received += len(data)
            room = 0 if self._spilled else max(0, self.limit - len(self._buf))
            self._buf += data[:room]
            if len(data) > room:
                # A window, not a buffer: memory stays bounded whatever the program prints.
                self._spill += data[room:]
                del self._spill[:-SPILL_WINDOW]
                self._spilled += len(data) - room
            self._cond.notify_all()

    def close(self, status: int | None) -> None:
        with self._cond:
            self.exit_status = status
            self.closed = True
            self._cond.notify_all()

    def wait_prompt(
        self, deadline: float, alive: Callable[[], bool] = lambda: True, take_rest: bool = True
    ) -> Exchange:
        """Wait for the next prompt marker; consume everything up to and including it.

        At the deadline with no marker, everything so far is taken, unless `take_rest`
        is False: then nothing is, so that a later call sees a marker (or a character)
        that arrives in two pieces whole. Output past the limit ends the wait at once,
        as the deadline would (Exchange.overflow)."""
        with self._cond:
            while True:
                exchange = self._take_prompt()
                if exchange is not None:
                    return exchange
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed or not alive() or self._spilled:
                    if not take_rest:
                        return Exchange("", None)
                    raw, overflow = bytes(self._buf), self._spilled > 0
                    self._buf.clear()
                    self._scan = 0
                    self._spill.clear()
                    self._spilled = 0
                    return Exchange(_clean(raw), None, overflow)
                self._cond.wait(min(remaining, 0.25))

    def _take_prompt(self) -> Exchange | None:
        """The exchange up to the first marker, taken, if one came (lock held).

        Searched from where the last search stopped: a step printing megabytes is
        read once, not once per chunk."""
        m = MARKER.search(self._buf, self._scan)
        if m is not None:
            # Read the groups before the buffer they point into is cut.
            kind, status = m.group(1).decode(), m.group(2)
            raw = bytes(self._buf[: m.start()])
            del self._buf[: m.end()]
            self._scan = 0
            return Exchange(_clean(raw), Prompt(kind, int(status) if status else None))
        self._scan = max(0, len(self._buf) - MARKER_SPAN)
        if not self._spilled:
            return None
        m = MARKER.search(self._spill)
        if m is None:
            return None
        # The prompt that followed output past the limit (an interrupted program's):
        # what came after it is the next exchange's.
        kind, status = m.group(1).decode(), m.group(2)
        raw = bytes(self._buf) + bytes(self._spill[: m.start()])
        self._buf = bytearray(self._spill[m.end() :])
        self._scan = 0
        self._spill.clear()
        self._spilled = 0
        return Exchange(_clean(raw), Prompt(kind, int(status) if status else None), True)

    def latest_line(self, limit: int = LINE_LIMIT) -> str:
        """The last non-empty line shown since the last prompt was read (last_line)."""
        with self._cond:
            tail = bytes((self._spill if self._spilled else self._buf)[-TAIL_BYTES:])
        return last_line(tail, limit)

    def type_line(self, line: str) -> None:
        self.write(line.encode() + b"\n")

    def interrupt(self) -> None:
        """Ctrl-C, as typed: the tty sends SIGINT to the foreground program."""
        self.write(b"\x03")


def _clean(raw: bytes) -> str:
    text = ANSI.sub(b"", raw).decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "")


def last_line(output: str | bytes, limit: int = LINE_LIMIT) -> str:
    """The last non-empty line of terminal output as a person sees it: escape sequences
    dropped, of a line redrawn with carriage returns (a counter) its last state,
    other control characters as spaces, and cut to `limit` characters."""
    raw = output.encode(errors="replace") if isinstance(output, str) else output
    text = ANSI.sub(b"", raw).decode("utf-8", errors="replace")
    for line in reversed(text.split("\n")):
        drawn = next((part for part in reversed(line.split("\r")) if part.strip()), "")
        shown = "".join(c if c.isprintable() else " " for c in drawn).strip()
        if shown:
            return shown if len(shown) <= limit else shown[: limit - 1] + "…"
    return ""


def split_echo(raw: str, line: str) -> tuple[str, str]:
    """Split what the terminal showed into (the prompt, the output after the echo of `line`)."""
    for echo in (line + "\n", line):
        at = raw.find(echo)
        if at != -1 and "\n" not in raw[:at]:
            return raw[:at], raw[at + len(echo) :]
    return "", raw


def restore_default_signals() -> None:
    """In a child before exec: the dispositions a terminal's shell starts with. An
    ignored signal stays ignored across exec, and a shell cannot undo it. Python
    ignores SIGPIPE and SIGXFSZ (`yes | head -1` would say "Broken pipe"); a runner
    a script started in the background (`make test &`) inherits SIGINT and SIGQUIT
    ignored, and Ctrl-C would not stop a step's program."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


class LocalPty:
    """A program on a pty of this machine (the build environment), feeding a Terminal."""

    def __init__(self, terminal: Terminal, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.terminal = terminal
        self._lock = threading.Lock()
        self._reaped = False
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            try:
                restore_default_signals()
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        terminal.write = self.write
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def _pump(self) -> None:
        """Owns the master: reads until EOF, then closes it and reaps the shell."""
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            self.terminal.feed(data)
        os.close(self.master)
        _, status = os.waitpid(self.pid, 0)
        with self._lock:
            self._reaped = True
        self.terminal.close(os.waitstatus_to_exitcode(status))

    def kill(self) -> None:
        """Kill the shell's process group; never a reaped pid that may be reused."""
        with self._lock, contextlib.suppress(ProcessLookupError):
            if not self._reaped:
                os.killpg(self.pid, signal.SIGKILL)
        self._thread.join(timeout=5)

"""Run a Scenario in a fresh guest and return what every step really did."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner import config, debugger, guests, interrupt, sandbox, sources, terminal
from runner.events import Activity, ActivityThrottle, Log, Progress
from runner.guest import image as guest_image
from runner.guest import sessions as guest_session
from runner.guest.agent_client import AgentClient, AgentError, AgentLost
from runner.guest.vm import (
    GDB_SOCKET,
    VM,
    Console,
    VMError,
    choose_accel,
    qemu_version,
    runtime_dir,
)
from runner.host import Accel
from runner.judge import expect, kernel_log, verdict
from runner.kernels import build as kernel_build
from runner.scenario import (
    FAILED_STATUSES,
    TERMINAL_KINDS,
    Provenance,
    Scenario,
    ScenarioResult,
    SessionRecording,
    Status,
    Step,
    StepResult,
)

PROMPT_TIMEOUT = 30.0  # a fresh shell or Python shows its first prompt within this
SCENARIO_DEADLINE = 900.0
LONG_STEP = 300.0  # a step allowed longer than this adds its timeout to the deadline
HANG_POLL = 0.05  # how often an expect=hang step asks for its task's state
# Task states that no signal ends: a step stuck there is proven hung.
STUCK_STATES = {"D": "uninterruptible sleep", "X": "dead"}
CONSOLE_SETTLE = 0.15  # no new console output for this long: the report is complete
CONSOLE_SETTLE_MAX = 1.5
# A step whose output goes past terminal.OUTPUT_LIMIT is interrupted (Ctrl-C); a
# program still printing this long after is killed. Under TCG the guest takes a
# second or two to drain what is queued in the pty and the agent.
INTERRUPT_GRACE = 10.0
# Of a step that printed too much, the start kept in its result: enough to see what
# it printed, too little to weigh on a page or an error message.
FLOOD_KEPT = 16 << 10


@dataclass
class Session:
    term: terminal.Terminal
    kind: str  # the program at its prompt now: a shell may have started a Python
    where: str
    busy_since: str | None = None  # source of a step still running (expect=hang)
    handle: terminal.LocalPty | None = None
    ready: bool = False  # its first prompt came
    started: str | None = None  # the line an output=later step typed, until collected

    @property
    def prompts(self) -> dict[str, str]:
        return terminal.PYTHON_PROMPTS if self.kind == "python" else terminal.SHELL_PROMPTS


@dataclass
class Typed:
    """What typing one step's lines gave."""

    exchange: terminal.Exchange  # the last one: the output of the whole input
    first_raw: str = ""  # what followed the first line: it shows the prompt
    last_line: str = ""  # the last line typed, whose echo precedes the output
    incomplete: bool = False
    overflow: bool = False  # some line's output went past terminal.OUTPUT_LIMIT


class Run:
    """The state of one scenario run: its guest, terminals, captures and build tree.

    The guest starts at the first guest step, on the kernel that step's `boot`
    names; a step with another `boot` replaces it (and its sessions) with a fresh
    guest on that kernel."""

    def __init__(
        self,
        kernels: guests.GuestKernels,
        kernel: config.Kernel,
        builddir: Path,
        layout: sandbox.Layout | None,
        deadline: float,
        log: Log,
        build_env: dict[str, str] | None = None,
        activity: Activity | None = None,
    ):
        self.guests = kernels
        self.kernel = kernel
        self.builddir = builddir
        self.layout = layout
        self.deadline = deadline
        self.log = log
        self.build_env = build_env or {}
        self.sessions: dict[str, Session] = {}
        self.debuggers: dict[str, debugger.Debugger] = {}  # gdb sessions on this guest
        self.captures: dict[str, str] = {}
        self.synced: dict[str, tuple[float, int]] = {}
        self._vm: VM | None = None
        self._vm_stack = contextlib.ExitStack()
        self.boot = ""  # the kernel the guest runs: a Step.boot value, "" before one starts
        self.boot_seconds: list[float] = []
        self.releases: dict[str, str] = {}  # boot -> the release its guest reported
        self.console_copy: Path | None = None  # where each guest's console log is added
        self.activity = activity  # the running step's latest line, while it runs long
        self.throttle: ActivityThrottle | None = None
        # A step printed without end and went on after Ctrl-C: why the run ends there.
        self.unstoppable = ""
        # Each session's output in time, for the replay; one clock for them all. A
        # session on a replaced guest goes on in the same recording.
        self.origin = time.monotonic()
        self.recordings: dict[str, tuple[str, str, terminal.Recording]] = {}

    @property
    def vm(self) -> VM:
        if self._vm is None:
            raise RunError("no guest is running")
        return self._vm

    @property
    def agent(self) -> AgentClient:
        agent = self.vm.agent
        if agent is None:
            raise RunError("the guest has no agent channel")
        return agent

    def _on_output(self, name: str, data: bytes) -> None:
        if name in self.sessions:
            self.sessions[name].term.feed(data)

    def _on_exit(self, name: str, status: int) -> None:
        if name in self.sessions:
            self.sessions[name].term.close(status)

    # --- the guest -------------------------------------------------------------
    def guest_for(self, step: Step, upcoming: list[Step]) -> None:
        """A guest on the kernel `step` runs on, started (or replaced) if need be;
        `upcoming` (step first) names the sessions it will have."""
        if self._vm is not None and self.boot == step.boot:
            return
        self.stop_guest()
        try:
            vm = self.guests.start(step, self._vm_stack)
        except guests.BuiltKernelError as exc:
            raise RunError(str(exc)) from None
        self._vm, self.boot = vm, step.boot
        self.boot_seconds.append(vm.boot_seconds)
        self.log(f"guest up in {vm.boot_seconds:.1f} s ({self.guests.accel.name})")
        agent = self.agent
        agent.on_output = self._on_output
        agent.on_exit = self._on_exit
        agent.on_log = lambda message: self.log(f"guest agent: {message}")
        agent.settime(time.time())
        self.releases[step.boot] = agent.hello()
        self.synced = {}
        self.sync_build_tree()
        self.adopt_sessions(upcoming)

    def adopt_sessions(self, upcoming: list[Step]) -> None:
        """Take the restored guest's idle terminals for this guest's sessions; the
        agent ends those left over. A guest booted cold has none: its sessions start
        when first used, as do any the pool lacks."""
        wanted: dict[str, str] = {}
        for step in self._this_guest(upcoming):
            if step.kind != "gdb":  # gdb runs beside the guest, not in a terminal of it
                wanted.setdefault(step.session, step.kind)
        for name, kind in wanted.items():  # before adopting: the prompt comes at once
            self.sessions[name] = self._guest_session(name, kind)
        adopted = guest_session.adopt(self.agent, wanted)
        for name in wanted:
            if name not in adopted:
                del self.sessions[name]

    def _this_guest(self, upcoming: list[Step]) -> list[Step]:
        """The guest steps of `upcoming` until one needs another kernel."""
        steps = []
        for step in upcoming:
            if step.where != "guest":
                continue
            if step.boot != self.boot:
                break
            steps.append(step)
        return steps

    def stop_guest(self) -> None:
        """End the guest and its sessions; build sessions live on."""
        for name in list(self.debuggers):
            self.debuggers.pop(name).kill()  # the guest ends: nothing to detach from
        for name in [n for n, sess in self.sessions.items() if sess.where == "guest"]:
            del self.sessions[name]
        if self._vm is not None and self.console_copy is not None:
            with open(self.console_copy, "ab") as out:
                out.write(self._vm.console.path.read_bytes())
        self._vm_stack.close()
        self._vm = None

    def _alive(self) -> bool:
        """Whether the guest still runs and its agent answers; true with none (a build
        step needs none)."""
        if self._vm is None:
            return True
        return self._vm.alive() and (self._vm.agent is None or not self._vm.agent.closed)

    def _check_channel(self) -> None:
        """Raise the agent channel's protocol error, if it was dropped for one."""
        if self._vm is not None and self._vm.agent is not None and self._vm.agent.failure:
            raise AgentLost(self._vm.agent.failure)

    def release(self) -> str:
        """The running guest's `uname -r`, as it said when it started."""
        return self.releases.get(self.boot, "")

    # --- files ---------------------------------------------------------------
    def sync_build_tree(self) -> None:
        """Copy new or changed files of the build tree into the guest user's home."""
        if self._vm is None:
            return  # the next guest gets them all when it starts
        changed = []
        for path in sorted(p for p in self.builddir.rglob("*") if p.is_file()):
            rel = str(path.relative_to(self.builddir))
            st = path.stat()
            if self.synced.get(rel) != (st.st_mtime, st.st_size):
                changed.append((rel, path.read_bytes(), st.st_mode & 0o777))
                self.synced[rel] = (st.st_mtime, st.st_size)
        if changed:
            self.agent.put(config.GUEST_HOME, changed, owner=config.GUEST_USER)

    # --- sessions ------------------------------------------------------------
    def session(self, step: Step) -> Session:
        sess = self.sessions.get(step.session)
        if sess is None:
            sess = self._spawn_build(step) if step.where == "build" else self._spawn_guest(step)
            self.sessions[step.session] = sess
        if not sess.ready:
            first = sess.term.wait_prompt(time.monotonic() + PROMPT_TIMEOUT, self._alive)
            if first.prompt is None:
                raise RunError(
                    f"{step.source}: session {step.session!r} never showed a prompt: {first.raw!r}"
                )
            sess.ready = True
        return sess

    def start_sessions_ahead(self, steps: list[Step]) -> None:
        """Start the guest sessions that `steps` will use on this guest, without waiting
        for them: called while the guest idles (a build step runs on the host), it
        hides their startup (a Python's is most of a second under TCG)."""
        if self._vm is None:
            return
        # Steps on another kernel come after a new guest: these would not survive it.
        for step in self._this_guest(steps):
            if step.session not in self.sessions and step.kind != "gdb":
                self._spawn_guest(step)

    def _recording(self, name: str, kind: str, where: str) -> terminal.Recording:
        if name not in self.recordings:
            self.recordings[name] = (where, kind, terminal.Recording(self.origin))
        return self.recordings[name][2]

    def _guest_session(self, name: str, kind: str) -> Session:
        def write(data: bytes) -> None:
            self.agent.input(name, data)

        recording = self._recording(name, kind, "guest")
        return Session(terminal.Terminal(name, write, recording=recording), kind, "guest")

    def _spawn_guest(self, step: Step) -> Session:
        sess = self._guest_session(step.session, step.kind)
        self.sessions[step.session] = sess  # before spawning: output may arrive at once
        self.agent.spawn(step.session, guest_session.program(step.kind))
        return sess

    def _spawn_build(self, step: Step) -> Session:
        assert self.layout is not None
        recording = self._recording(step.session, "shell", "build")
        term = terminal.Terminal(step.session, lambda data: None, recording=recording)
        # "$ " whoever runs it: the reader builds modules as an ordinary user.
        base = {**terminal.shell_env(sandbox.PATH, prompt="$"), **self.build_env}
        env = sandbox.env(self.layout, base)
        argv = sandbox.argv(self.layout, terminal.SHELL_ARGV, as_root=os.geteuid() == 0)
        handle = terminal.LocalPty(term, argv, env, str(self.builddir))
        return Session(term, "shell", "build", handle=handle)

    def close(self) -> None:
        for name in list(self.debuggers):  # the guest goes on until it is torn down
            self.release_debugger(name)
        for sess in self.sessions.values():
            if sess.handle is not None:
                sess.handle.kill()
        self.stop_guest()

    # --- steps ---------------------------------------------------------------
    def run_step(self, index: int, step: Step) -> StepResult:
        """Run one step; a guest step needs its guest started first (guest_for)."""
        if step.kind == "gdb":
            return self._gdb_step(index, step)
        if step.where == "guest":
            self._check_not_stopped(step)
        sess = self.session(step)
        _check_program(step, sess)
        typed = expect.substitute(step.input, self.captures, step.source)
        lines = typed.split("\n")
        prompt = sess.prompts["P"]
        if sess.busy_since:
            return _not_run(index, step, prompt, typed, f"session still running {sess.busy_since}")
        console = self._vm.console if self._vm is not None else None
        console_start = console.offset() if console is not None else 0
        if sess.term.recording is not None:
            sess.term.recording.mark(str(index + 1))
        started = time.monotonic()
        received = sess.term.received
        deadline = min(started + step.timeout, self.deadline)
        if self.activity is not None:
            self.throttle = ActivityThrottle(self.activity, index, started)
        if sess.where == "build" and self.guests.workspace is not None:
            self.guests.workspace.before_build_step(typed)
        probe = None
        if step.expect_hang and sess.where == "guest":
            assert console is not None  # a guest step has its guest
            probe = HangProbe(self.agent, step.session, console, console_start, started)
        if step.output == "later":
            return self._start_later(index, step, sess, typed, console, console_start, started)
        if step.output == "collect":
            typed_out = Typed(self._wait(sess, deadline, None), last_line=sess.started or "")
            sess.started = None
        else:
            typed_out = self._type(sess, lines, deadline, probe)
        exchange, incomplete = typed_out.exchange, typed_out.incomplete
        if exchange.prompt is not None:
            sess.kind = exchange.prompt.program  # `python3` or `exit()` changes it
        flood = ""
        if typed_out.overflow:
            flood = self._stop_flood(sess, step, exchange, received, started)
        self._check_channel()
        if exchange.prompt is not None and not incomplete:
            # The terminal shows the prompt its program printed, not the one we expect.
            prompt = terminal.split_echo(typed_out.first_raw, lines[0])[0] or prompt
        duration = time.monotonic() - started
        output = terminal.split_echo(exchange.raw, typed_out.last_line)[1]
        detail = ""
        if flood:
            output, detail = _flood_excerpt(output, sess.term.received - received), flood
        if sess.where == "build":
            self.sync_build_tree()
            failed = exchange.prompt is not None and exchange.prompt.status
            if failed and self.guests.workspace is not None and not flood:
                detail = self.guests.workspace.rejects()
        klog = console.read(console_start).splitlines() if console is not None else []
        events = kernel_log.events(klog)
        if flood:
            status = Status.TOO_MUCH_OUTPUT
        elif incomplete:
            status = Status.INCOMPLETE_INPUT
        else:
            status = self._status(step, sess, exchange)
        result = StepResult(
            index=index,
            status=status,
            prompt=prompt,
            input=typed,
            output=output,
            exit_status=exchange.prompt.status if exchange.prompt and not flood else None,
            duration=round(duration, 3),
            where=sess.where,
            kernel=self.release() if sess.where == "guest" else "",
            kernel_log=klog,
            events=events,
            hang_proof=probe.proof if probe is not None and status == Status.HANG else "",
            detail=detail,
        )
        if step.expected is not None and status in (Status.OK, Status.HANG):
            wanted = expect.for_kernel(step.expected, self.kernel.name)
            m = verdict.judge_output(wanted, output, result.exit_status)
            result.matched, result.diff, result.captures = m.ok, m.diff, m.captures
            self.captures.update(m.captures)
        return result

    def _start_later(
        self,
        index: int,
        step: Step,
        sess: Session,
        typed: str,
        console: Console | None,
        console_start: int,
        started: float,
    ) -> StepResult:
        """output=later: the line is typed and left running; the step of the same
        session marked output=collect waits for its prompt and shows its output."""
        sess.term.type_line(typed)
        sess.started = typed
        klog = console.read(console_start).splitlines() if console is not None else []
        result = StepResult(
            index=index,
            status=Status.STARTED,
            prompt=sess.prompts["P"],
            input=typed,
            output="",
            exit_status=None,
            duration=round(time.monotonic() - started, 3),
            where=sess.where,
            kernel=self.release() if sess.where == "guest" else "",
            kernel_log=klog,
            events=kernel_log.events(klog),
        )
        if step.expected is not None:  # nothing yet: its output is the collecting step's
            m = verdict.judge_output(step.expected, "", None)
            result.matched, result.diff = m.ok, m.diff
        return result

    # --- gdb ---------------------------------------------------------------------
    def _check_not_stopped(self, step: Step) -> None:
        """A guest step while gdb holds the guest stopped would wait for nothing."""
        for name, dbg in self.debuggers.items():
            if dbg.attached and not dbg.running:
                raise RunError(
                    f"{step.source}: the guest is stopped in gdb (session {name!r}), so this "
                    "step could never run: let the guest go first (`continue` with "
                    "output=later, or `detach`)"
                )

    def _debugger(self, step: Step, deadline: float) -> debugger.Debugger:
        """The session's gdb, attached to this guest at its first step. On the kernel
        the post built, it reads that kernel's symbols (~/build/vmlinux)."""
        dbg = self.debuggers.get(step.session)
        if dbg is not None:
            return dbg
        workspace = self.guests.workspace
        vmlinux = None  # a guest on Debian's kernel: gdb has addresses only
        if self.boot == "built" and workspace is not None:
            kept = workspace.workspace.objects / "vmlinux"
            vmlinux = kept if kept.is_file() else None
        socket = self.vm.rundir / GDB_SOCKET
        qmp = self.vm.rundir / "qmp.sock"
        if self.layout is None:  # a scenario without build steps has no sandbox
            command = debugger.argv(str(vmlinux) if vmlinux else None)
            dbg = debugger.Debugger(command, str(socket), qmp, self.builddir)
        else:
            home = sandbox.home(self.layout)
            inside = f"{home}/{kernel_build.INSIDE_BUILD}/vmlinux"
            command = debugger.argv(inside if vmlinux else None)
            # The sandbox's user (nobody, under root) connects to it; the socket sits
            # in a run dir only root can walk, and the sandbox sees it alone.
            socket.chmod(0o666)
            binds = (*self.layout.read_write, (socket, debugger.SOCKET_INSIDE))
            layout = dataclasses.replace(self.layout, read_write=binds)
            wrapped = sandbox.argv(layout, command, as_root=os.geteuid() == 0)
            env = sandbox.env(layout, {"TERM": "dumb", "LANG": "C.UTF-8"})
            dbg = debugger.Debugger(wrapped, debugger.SOCKET_INSIDE, qmp, self.builddir, env)
        self.debuggers[step.session] = dbg
        try:
            dbg.start(deadline)
        except debugger.DebuggerError as exc:
            self.release_debugger(step.session)
            raise RunError(f"{step.source}: {exc}") from None
        return dbg

    def release_debugger(self, name: str) -> str:
        """Detach the session's gdb and end it: the guest goes on. Says what had to
        be forced, if anything."""
        dbg = self.debuggers.pop(name, None)
        if dbg is None:
            return ""
        forced = dbg.release()
        if forced:
            self.log(f"gdb session {name!r}: {forced}")
        return forced

    def _gdb_step(self, index: int, step: Step) -> StepResult:
        """One line typed at gdb. A command that lets the guest run waits for it to
        stop again within the step's timeout (output=later: not here, but at the
        session's output=collect step). A failed step detaches gdb: the guest goes on."""
        typed = expect.substitute(step.input, self.captures, step.source)
        console = self.vm.console
        console_start = console.offset()
        started = time.monotonic()
        deadline = min(started + step.timeout, self.deadline)
        dbg = self._debugger(step, deadline)
        tick = self._stop_ticker(index, step, dbg, started)
        if step.output == "collect":
            reply = dbg.wait_stop(deadline, tick)
        else:
            reply = dbg.console(typed, deadline)
            if reply.state == "running" and step.output == "now":
                stop = dbg.wait_stop(deadline, tick)
                reply = dataclasses.replace(stop, output=reply.output + stop.output)
        output, exit_status, detail, status = reply.output, 0, "", Status.OK
        if reply.state == "error":
            exit_status, detail = 1, f"gdb said: {reply.error}"
        elif step.output == "later":
            status = Status.STARTED if reply.state == "running" else Status.UNEXPECTED_RETURN
        elif reply.state == "":
            status = Status.TIMEOUT
            detail = self._gdb_timeout(step, dbg, reply)
        klog = console.read(console_start).splitlines()
        result = StepResult(
            index=index,
            status=status,
            prompt=debugger.PROMPT,
            input=typed,
            output=output,
            exit_status=exit_status if status == Status.OK else None,
            duration=round(time.monotonic() - started, 3),
            where="guest",
            kernel=self.release(),
            kernel_log=klog,
            events=kernel_log.events(klog),
            detail=detail,
        )
        if step.expected is not None and status in (Status.OK, Status.STARTED):
            wanted = expect.for_kernel(step.expected, self.kernel.name)
            m = verdict.judge_output(wanted, output, result.exit_status)
            result.matched, result.diff, result.captures = m.ok, m.diff, m.captures
            self.captures.update(m.captures)
        if status in FAILED_STATUSES or result.matched is False:
            forced = self.release_debugger(step.session)
            result.detail += ("\n" if result.detail else "") + (
                forced or "gdb detached from the guest, which went on"
            )
        return result

    def _stop_ticker(
        self, index: int, step: Step, dbg: debugger.Debugger, started: float
    ) -> Callable[[], None]:
        """The live display's line while a gdb step waits for the guest to stop: what
        it waits at (gdb's breakpoints, as the session set them)."""
        if self.activity is None:
            return lambda: None
        throttle = ActivityThrottle(self.activity, index, started)
        what = f"gdb: {step.input!r} waits for the guest to stop at a breakpoint"
        if dbg.breakpoints:
            what += f" ({', '.join(dbg.breakpoints)})"
        return lambda: throttle.tick(lambda: what)

    def _gdb_timeout(self, step: Step, dbg: debugger.Debugger, reply: debugger.Reply) -> str:
        """What a gdb step waited for in vain, with gdb's breakpoints: the guest is
        stopped (Ctrl-C at gdb) to ask for them, then released by the caller."""
        if reply.error:  # gdb itself is gone
            return f"gdb stopped answering: {reply.error}"
        if not dbg.running:
            return f"gdb did not answer {step.input!r} within {step.timeout:g} s"
        what = (
            f"waited {step.timeout:g} s for the guest to stop (at a breakpoint, or where "
            f"{step.input!r} ends); it never did"
        )
        if dbg.interrupt(time.monotonic() + debugger.CONTROL_TIMEOUT):
            points = dbg.console("info breakpoints", time.monotonic() + debugger.CONTROL_TIMEOUT)
            what += f"; gdb's breakpoints:\n{points.output.rstrip()}"
        return what

    def _wait(self, sess: Session, deadline: float, probe: HangProbe | None) -> terminal.Exchange:
        """The next prompt, or what came before the deadline; for an expect=hang step,
        also what came before the hang was proven (probe.proof then says how). A run
        that reports activity hears of the step's latest line while it waits."""
        if probe is None and self.throttle is None:
            return sess.term.wait_prompt(deadline, self._alive)
        while True:
            poll = min(deadline, time.monotonic() + HANG_POLL)
            exchange = sess.term.wait_prompt(poll, self._alive, take_rest=False)
            if exchange.prompt is not None:
                return exchange
            ended = time.monotonic() >= deadline or sess.term.closed or not self._alive()
            ended = ended or sess.term.overflowed  # taken at once, as the deadline would
            if ended or (probe is not None and probe.proven()):
                return sess.term.wait_prompt(time.monotonic(), self._alive)
            if self.throttle is not None:
                self.throttle.tick(sess.term.latest_line)

    def _type(
        self, sess: Session, lines: list[str], deadline: float, probe: HangProbe | None = None
    ) -> Typed:
        """Type the lines as a person would: each continuation line only once the
        program asks for one; note when the input does not fit (the statement ended
        before its last line, or the program still wants more after it)."""
        typed = Typed(terminal.Exchange("", None))
        for n, line in enumerate(lines):
            sess.term.type_line(line)
            typed.last_line = line
            typed.exchange = self._wait(sess, deadline, probe)
            typed.overflow = typed.overflow or typed.exchange.overflow
            if n == 0:
                typed.first_raw = typed.exchange.raw
            prompt = typed.exchange.prompt
            if prompt is None:
                return typed
            if n < len(lines) - 1 and prompt.kind != "C":
                typed.incomplete = True  # finished before its continuation lines
                return typed
        if typed.exchange.prompt is not None and typed.exchange.prompt.kind == "C":
            if sess.kind != "python":
                sess.term.interrupt()  # drop the open line: the session stays usable
                sess.term.wait_prompt(deadline, self._alive)
                typed.incomplete = True
                return typed
            # A compound statement on one line still wants the blank line that ends it.
            sess.term.type_line("")
            typed.last_line = ""
            typed.exchange = self._wait(sess, deadline, probe)
            typed.overflow = typed.overflow or typed.exchange.overflow
        return typed

    def _stop_flood(
        self, sess: Session, step: Step, exchange: terminal.Exchange, received: int, started: float
    ) -> str:
        """Stop a step that printed too much, as a person would: Ctrl-C, then the
        prompt it brings back is awaited, output discarded. A program that goes on is
        killed: a build session's whole process group; a guest's with the guest, so
        the run ends (self.unstoppable). Says what it printed and how it stopped."""
        interrupted = exchange.prompt is None  # else it ended by itself, past the limit
        if interrupted:
            sess.term.interrupt()
            grace = time.monotonic() + INTERRUPT_GRACE
            while exchange.prompt is None:
                if time.monotonic() >= grace or sess.term.closed or not self._alive():
                    break
                # Each wait returns as soon as another OUTPUT_LIMIT arrived: discarded.
                exchange = sess.term.wait_prompt(grace, self._alive)
        printed = sess.term.received - received
        what = (
            f"it printed {printed:,} bytes in {time.monotonic() - started:.1f} s, "
            f"more than the {terminal.OUTPUT_LIMIT:,} a step may"
        )
        if exchange.prompt is not None:
            return f"{what}; " + ("Ctrl-C stopped it" if interrupted else "it ended by itself")
        if not self._alive() or sess.term.closed:
            return f"{what}; its session ended before it was stopped"
        if sess.handle is not None:
            sess.handle.kill()
            how = "its build session was killed"
        else:
            how = "the guest will be stopped"
        self.unstoppable = (
            f"{step.source}: the step printed without end and went on after Ctrl-C "
            f"for {INTERRUPT_GRACE:g} s; {how}, and the run ends here"
        )
        return f"{what}; Ctrl-C did not stop it: {how}"

    def _status(self, step: Step, sess: Session, exchange: terminal.Exchange) -> Status:
        if exchange.prompt is not None:
            return Status.UNEXPECTED_RETURN if step.expect_hang else Status.OK
        if not self._alive():
            return Status.LOST
        if sess.term.closed:
            return Status.LOST
        sess.busy_since = f"from {step.source}"  # it still runs: nothing more is typed here
        return Status.HANG if step.expect_hang else Status.TIMEOUT


def _check_program(step: Step, sess: Session) -> None:
    """A block types into the program its language names: a pycon block into a
    Python a console step started, a console block into the shell it exited to."""
    if step.kind == sess.kind or step.kind not in TERMINAL_KINDS:
        return
    if step.kind == "python":
        how = "start a Python shell in it first (a console step such as `python3` or `sudo drgn`)"
    else:
        how = "leave that Python first (`exit()` at the end of a pycon block)"
    shows = "Python's prompt (>>>)" if sess.kind == "python" else "a shell prompt ($)"
    raise RunError(
        f"{step.source}: this {step.language} block types into session {step.session!r}, "
        f"whose terminal shows {shows}: {how}"
    )


class HangProbe:
    """Proves an expect=hang step stuck instead of waiting out its timeout.

    Proven once the session's foreground task is in state D or X, where no signal
    reaches it, and the step's kernel log shows an event that says why. A task that
    merely sleeps (S) proves nothing: it may still answer.
    """

    def __init__(
        self, agent: AgentClient, session: str, console: Console, console_start: int, started: float
    ) -> None:
        self.agent = agent
        self.session = session
        self.console = console
        self.console_start = console_start
        self.started = started
        self.proof = ""
        self.saw_event = False

    def proven(self) -> bool:
        if not self.saw_event:  # once seen, an event stays in the log: read no more
            lines = self.console.read(self.console_start).splitlines()
            self.saw_event = bool(kernel_log.events(lines))
        if not self.saw_event:
            return False
        task = self.agent.foreground(self.session)
        state = STUCK_STATES.get(task.state) if task is not None else None
        if task is None or state is None:
            return False
        self._settle()
        elapsed = time.monotonic() - self.started
        self.proof = (
            f"task {task.pid} ({task.comm}) is in state {task.state} ({state}) "
            f"after {elapsed:.1f} s"
        )
        return True

    def _settle(self) -> None:
        """Let the console catch up: the kernel may still be printing the report."""
        deadline = time.monotonic() + CONSOLE_SETTLE_MAX
        size = self.console.offset()
        while time.monotonic() < deadline:
            time.sleep(CONSOLE_SETTLE)
            now = self.console.offset()
            if now == size:
                return
            size = now


class RunError(RuntimeError):
    """The scenario could not run (as opposed to a step that failed)."""


def _flood_excerpt(output: str, printed: int) -> str:
    """The start of a step's output past the limit, and a line that says so."""
    kept = output[:FLOOD_KEPT]
    if not kept.endswith("\n"):
        kept += "\n"
    return kept + f"[kblog: output cut here; the step printed {printed:,} bytes in all]\n"


def _not_run(index: int, step: Step, prompt: str, typed: str, why: str) -> StepResult:
    return StepResult(
        index=index,
        status=Status.NOT_RUN,
        prompt=prompt,
        input=typed,
        output=why,
        exit_status=None,
        duration=0.0,
        where=step.where,
    )


def _kill_build_shells(run: Run) -> None:
    for sess in list(run.sessions.values()):  # a copy: the run's thread changes it
        if sess.handle is not None:
            sess.handle.kill()
    for dbg in list(run.debuggers.values()):  # their guests are killed too (vm.py)
        dbg.kill()


def run_scenario(
    scenario: Scenario,
    kernel_name: str | None = None,
    *,
    log: Log = print,
    progress: Progress | None = None,
    activity: Activity | None = None,
    kmod_dir: Path = config.KMOD,
    kernel_dir: Path = config.KERNEL_DIR,
    accel: Accel | None = None,
    console_copy: Path | None = None,
    snapshots: bool | None = None,
) -> ScenarioResult:
    """Run every step in order, in the build sandbox or in a fresh guest, and tear
    everything down. Build steps start in a copy of `kmod_dir`; a scenario that builds
    the kernel also gets `kernel_dir` (its config fragment) at ~/kernel. `activity`
    hears, about once a second, of a step that has run for a while."""
    scenario.validate()
    kernel = config.kernel(kernel_name)
    artifacts = guest_image.prepare(kernel, log)
    accel = accel or choose_accel(artifacts, log)
    needs_build = any(s.where == "build" for s in scenario.steps)
    headers = guest_image.headers_root(kernel, log) if needs_build else None
    if needs_build:
        sandbox.bwrap()  # missing: say so before anything starts
    started = time.monotonic()
    captured_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    results: list[StepResult] = []
    error = ""
    with contextlib.ExitStack() as stack:
        # Under the run dir, named by our pid: if this process is killed, the next
        # runner's sweep removes it, as it does the VM's.
        tmp = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix=f"build-{os.getpid()}-", dir=runtime_dir())
            )
        )
        builddir = tmp / "work"
        shutil.copytree(kmod_dir, builddir, ignore=shutil.ignore_patterns(*sources.IGNORE))
        layout = None
        build_env: dict[str, str] = {}
        workspace = None
        if scenario.builds_kernel:
            fragment = kernel_dir / kernel_build.FRAGMENT_NAME
            if not fragment.is_file():
                raise RunError(f"{fragment}: missing; a scenario with boot=built needs it")
            workspace = guests.KernelWorkspace.claim(
                stack, kernel, scenario.name, fragment.read_text(), log
            )
            shutil.copytree(
                kernel_dir,
                builddir / kernel_build.INSIDE_KERNEL_DIR,
                ignore=shutil.ignore_patterns(*sources.IGNORE),
            )
            build_env = kernel_build.build_env(workspace.source.tree)
        if headers is not None:
            layout = sandbox.Layout(kernel.release, headers, builddir, tmp / "sandbox")
            if workspace is not None:
                binds = workspace.workspace.binds(sandbox.home(layout))
                layout = dataclasses.replace(layout, read_write=binds)
            sandbox.prepare(layout, as_root=os.geteuid() == 0)
        kernels = guests.GuestKernels(artifacts, accel, log, snapshots, workspace)
        # A step that may take minutes (a kernel build) extends the whole run's limit.
        long_steps = sum(s.timeout for s in scenario.steps if s.timeout > LONG_STEP)
        deadline = started + SCENARIO_DEADLINE + long_steps
        run = Run(kernels, kernel, builddir, layout, deadline, log, build_env, activity)
        stack.callback(run.close)
        # An interrupt in another thread ends the build shells too (vm.py kills the
        # guests): a step waiting on one returns at once, and the loop stops.
        stack.enter_context(interrupt.stops(lambda: _kill_build_shells(run)))
        if console_copy is not None:
            # Registered after run.close: it runs first, before a teardown removes the log.
            console_copy.write_bytes(b"")
            run.console_copy = console_copy
        for index, step in enumerate(scenario.steps):
            interrupt.check()  # a step cut short by an interrupt is no result
            if progress:
                progress(index, len(scenario.steps), step, None)
            if not error and step.where == "guest":
                # A stock guest that cannot start (no QEMU, a broken image) ends the
                # run with its VMError, as before any step; a built kernel's problems
                # are the post's: a RunError naming its step.
                try:
                    run.guest_for(step, scenario.steps[index:])
                except RunError as exc:
                    error = str(exc)
            if error:
                result = _not_run(index, step, "", step.input, error)
            else:
                try:
                    if step.where == "build":
                        run.start_sessions_ahead(scenario.steps[index + 1 :])
                    result = run.run_step(index, step)
                except (RunError, expect.CaptureError) as exc:
                    error = str(exc)
                    result = _not_run(index, step, "", step.input, error)
                except (AgentLost, AgentError, VMError) as exc:  # keep the steps so far
                    error = f"{step.source}: the guest stopped answering: {exc}"
                    result = _not_run(index, step, "", step.input, error)
                    result.status = Status.LOST
                if kernel_log.ends_guest(result.events):
                    result.status = Status.PANIC
                    error = f"{step.source}: the kernel panicked; the guest is gone"
                elif run.unstoppable:
                    error = run.unstoppable
                    run.stop_guest()  # a guest still printing: it stops now, not at the end
                elif result.status == Status.LOST:
                    error = f"{step.source}: {verdict.explain(Status.LOST, step, '')}"
            results.append(result)
            if progress:
                progress(index, len(scenario.steps), step, result)
        interrupt.check()
        stock_release = run.releases.get("stock", kernel.release)
        built = workspace.provenance(builddir) if workspace is not None else {}
    provenance = Provenance(
        kernel=stock_release,
        kernel_package=artifacts.kernel_version,
        accel=accel.name,
        accel_reason=accel.reason,
        qemu=qemu_version(),
        captured_at=captured_at,
        boot_seconds=round(sum(run.boot_seconds), 2),
        total_seconds=round(time.monotonic() - started, 2),
        built=built,
    )
    recordings = {
        name: SessionRecording(where, kind, recording.events)
        for name, (where, kind, recording) in run.recordings.items()
    }
    return ScenarioResult(scenario.name, provenance, results, error, recordings)

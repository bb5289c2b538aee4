"""The guest agent: PID 1 of the guest, serving the host over a virtio-serial port.

Standard library only: it runs on the guest's Debian python3. Protocol: one JSON
object per line each way. The host sends requests ({"id": N, "op": ...}) and gets
one reply per request ({"id": N, "ok": true, ...} or {"id": N, "ok": false,
"error": ...}); the agent also sends events without an id: terminal output
({"ev": "out"}) and session exits ({"ev": "exit"}). A put's files do not come on
the port: the host writes their bytes at the start of the transfer disk, a virtio
disk whose serial is TRANSFER_SERIAL, and the request names their sizes. Under
emulation the port moves a page per read; the disk moves megabytes.

Kernel messages never pass through here: they go out on the serial console, so a
dead agent still leaves the whole kernel log on the host.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import mmap
import os
import pty
import pwd
import select
import signal
import socket
import struct
import sys
import termios
import time
import traceback
from pathlib import Path

PROTOCOL = 6
EXIT_DRAIN = 0.5  # how long a session's pty is read after its program exits
PORT_NAME = "org.kblog.agent.0"
READ_SIZE = 65536
TRANSFER_SERIAL = "kblog-transfer"
TRANSFER_READ = 4 << 20  # bytes per read of the transfer disk
# Above this much unsent output, terminals are not read: their writers block, as on a
# real terminal, instead of PID 1 growing until the OOM killer takes it.
OUTBUF_LIMIT = 1 << 20


def find_port() -> str | None:
    """The /dev node of our virtio-serial port (there is no udev to name it)."""
    for entry in Path("/sys/class/virtio-ports").glob("*"):
        try:
            if (entry / "name").read_text().strip() == PORT_NAME:
                return f"/dev/{entry.name}"
        except OSError:
            continue
    return None


def find_transfer_disk() -> str:
    """The /dev node of the transfer disk, found by its serial."""
    for entry in Path("/sys/block").glob("vd*"):
        with contextlib.suppress(OSError):
            if (entry / "serial").read_text().strip() == TRANSFER_SERIAL:
                return f"/dev/{entry.name}"
    raise OSError(f"no disk with the serial {TRANSFER_SERIAL} (the transfer disk)")


class TransferReader:
    """A put's bytes, read in order from the start of the transfer disk. Read past the
    page cache (O_DIRECT): pages an earlier put left there would be stale."""

    def __init__(self, device: str, total: int) -> None:
        self.fd = os.open(device, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        self.buf = mmap.mmap(-1, TRANSFER_READ)  # page-aligned, as O_DIRECT needs
        self.left = total  # bytes of the put not read from the disk yet
        self.offset = 0  # the disk's offset of the next read
        self.start = self.end = 0  # what buf holds that was not copied out yet

    def copy(self, out, size: int) -> None:
        """Write the next `size` bytes of the put to the file `out`."""
        while size:
            if self.start == self.end:
                # Whole sectors, as O_DIRECT reads them; no more than the put holds.
                want = min(TRANSFER_READ, (self.left + 511) // 512 * 512)
                with memoryview(self.buf) as view:
                    got = os.preadv(self.fd, [view[:want]], self.offset)
                if got <= 0:
                    raise OSError("the transfer disk ended before the put's bytes")
                self.offset += got
                self.start, self.end = 0, min(got, self.left)
                self.left -= self.end
            take = min(size, self.end - self.start)
            with memoryview(self.buf) as view:
                out.write(view[self.start : self.start + take])
            self.start += take
            size -= take

    def close(self) -> None:
        self.buf.close()
        os.close(self.fd)


def setup_system() -> None:
    """What an init system would do, reduced to what the sessions need."""
    for target, fstype, options in (
        ("/dev/pts", "devpts", "gid=5,mode=620,ptmxmode=666"),
        ("/dev/shm", "tmpfs", "mode=1777"),
        ("/run", "tmpfs", "mode=755"),
        ("/tmp", "tmpfs", "mode=1777"),
    ):
        os.makedirs(target, exist_ok=True)
        _mount(fstype, target, fstype, options)
    socket.sethostname("kblog")


def _mount(source: str, target: str, fstype: str, options: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


class Session:
    """A program on a pty: what a person would see in one terminal window."""

    def __init__(self, name: str, pid: int, master: int) -> None:
        self.name = name
        self.pid = pid
        self.master = master
        # A pooled session (started before the snapshot, for a host yet to come)
        # keeps what it prints here, its program's key beside it, until adopted.
        self.held: bytearray | None = None
        self.program = ""


def program_key(req: dict) -> str:
    """What a spawn request runs, as a pooled session is matched against it."""
    fields = ("argv", "env", "user", "cwd", "rows", "cols")
    return json.dumps({k: req.get(k) for k in fields}, sort_keys=True)


def spawn(name: str, req: dict) -> Session:
    user = pwd.getpwnam(req.get("user", "root"))
    argv = req["argv"]
    env = dict(req.get("env", {}))
    env.setdefault("HOME", user.pw_dir)
    env.setdefault("USER", user.pw_name)
    env.setdefault("LOGNAME", user.pw_name)
    env.setdefault("SHELL", user.pw_shell)
    cwd = req.get("cwd", user.pw_dir)
    pid, master = pty.fork()
    if pid == 0:  # the child: become the user and run the program
        try:
            # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
            # across exec: `yes | head -1` would print "Broken pipe" in our terminals.
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            os.initgroups(user.pw_name, user.pw_gid)
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:  # report on the terminal, as a shell would
            os.write(2, f"kblog-agent: cannot start {argv[0]}: {exc}\r\n".encode())
        finally:
            os._exit(127)
    rows, cols = req.get("rows", 30), req.get("cols", 100)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.set_blocking(master, False)
    return Session(name, pid, master)


class Agent:
    def __init__(self, port: str) -> None:
        self.port_path = port
        self.port = os.open(port, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.sessions: dict[str, Session] = {}
        self.by_pid: dict[int, Session] = {}
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    # --- output to the host -------------------------------------------------
    def send(self, msg: dict) -> None:
        self.outbuf += json.dumps(msg, separators=(",", ":")).encode() + b"\n"

    def flush(self) -> None:
        while self.outbuf:
            try:
                n = os.write(self.port, self.outbuf)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ENXIO, errno.EIO):
                    return  # no host connected: keep it for when one is
                raise
            del self.outbuf[:n]

    # --- the loop ---------------------------------------------------------------
    def run(self) -> None:
        while True:
            poller = select.poll()
            poller.register(self.port, select.POLLIN | (select.POLLOUT if self.outbuf else 0))
            poller.register(self.wake_r, select.POLLIN)
            if len(self.outbuf) < OUTBUF_LIMIT:
                for s in self.sessions.values():
                    if s.master >= 0:
                        poller.register(s.master, select.POLLIN)
            events = poller.poll(1000)
            hangup = False
            for fd, mask in events:
                if fd == self.port:
                    if mask & select.POLLIN:
                        self.read_port()
                    if mask & select.POLLHUP:
                        hangup = True
                elif fd == self.wake_r:
                    _drain(self.wake_r)
                else:
                    self.read_session(fd)
            self.reap()
            self.flush()
            if hangup and not any(m & select.POLLIN for _, m in events):
                time.sleep(0.05)  # host not connected: poll() would spin

    def read_port(self) -> None:
        """Read all the port holds now, not one read per poll round: the port gives a
        page per read, and under emulation every round costs."""
        while True:
            try:
                data = os.read(self.port, READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                return
            self.take(data)

    def take(self, data: bytes) -> None:
        """The request lines out of what was read."""
        while data:
            end = data.find(b"\n")
            if end < 0:
                self.inbuf += data
                return
            line = bytes(self.inbuf + data[:end])
            self.inbuf = bytearray()
            data = data[end + 1 :]
            req = self.parse(line)
            if req is not None:
                self.handle(req)

    def parse(self, line: bytes) -> dict | None:
        if not line.strip():
            return None
        try:
            req = json.loads(line)
        except ValueError as exc:
            self.send({"ev": "log", "message": f"bad request: {exc}"})
            return None
        if not isinstance(req, dict):
            self.send({"ev": "log", "message": "bad request: not a JSON object"})
            return None
        return req

    def handle(self, req: dict) -> None:
        try:
            reply = getattr(self, "op_" + req["op"])(req)
            self.send({"id": req.get("id"), "ok": True, **reply})
        except Exception as exc:  # one bad request must not kill PID 1
            self.send(
                {
                    "id": req.get("id"),
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc(limit=3),
                }
            )

    def read_session(self, fd: int) -> bool:
        """Forward what the terminal printed; False once there is nothing more for now."""
        session = next((s for s in self.sessions.values() if s.master == fd), None)
        if session is None:
            return False
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:  # EIO: the last process on the pty is gone
            data = b""
        if data:
            if session.held is not None:
                session.held += data
            else:
                self.send({"ev": "out", "session": session.name, "data": _b64(data)})
            return True
        os.close(session.master)
        session.master = -1
        return False

    def drain(self, session: Session) -> None:
        """Forward what the pty still holds after its program exited.

        The kernel moves a pty's output to the master side a little later than the
        program wrote it, so an empty read right after the exit does not mean the
        end: read until the pty reports it (EIO, once no process holds it), or for
        EXIT_DRAIN seconds where a background job still does.
        """
        deadline = time.monotonic() + EXIT_DRAIN
        while session.master >= 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([session.master], [], [], remaining)[0]:
                return
            self.read_session(session.master)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            session = self.by_pid.pop(pid, None)
            if session is not None:
                self.drain(session)  # its last words first: they precede the exit
                code = os.waitstatus_to_exitcode(status)
                self.send({"ev": "exit", "session": session.name, "status": code})

    # --- requests ---------------------------------------------------------------
    def op_hello(self, req: dict) -> dict:
        return {"protocol": PROTOCOL, "kernel": os.uname().release}

    def op_settime(self, req: dict) -> dict:
        time.clock_settime(time.CLOCK_REALTIME, float(req["epoch"]))
        return {}

    def op_spawn(self, req: dict) -> dict:
        """Start a session; with "pool", one held for a host to adopt after a restore."""
        name = req["session"]
        if name in self.sessions:
            raise ValueError(f"session {name!r} exists")
        session = spawn(name, req)
        if req.get("pool"):
            session.held, session.program = bytearray(), program_key(req)
        self.sessions[name] = session
        self.by_pid[session.pid] = session
        return {"pid": session.pid}

    def op_pool(self, req: dict) -> dict:
        """The pooled sessions and what each printed so far (is it at its prompt?)."""
        return {
            "sessions": {
                s.name: _b64(bytes(s.held)) for s in self.sessions.values() if s.held is not None
            }
        }

    def op_adopt(self, req: dict) -> dict:
        """Hand pooled sessions to the host under the names it asks for, each running
        the same program as its spawn request; end the pooled ones nobody asked for:
        a reader's `ps` shows the sessions of the post and no others."""
        pooled = [s for s in self.sessions.values() if s.held is not None]
        for session in [s for s in pooled if s.pid not in self.by_pid]:
            pooled.remove(session)  # its program has exited and been reaped: no terminal
            del self.sessions[session.name]
        adopted = []
        for want in req["sessions"]:
            key = program_key(want)
            match = next((s for s in pooled if s.program == key), None)
            if match is None or want["session"] in self.sessions:
                continue
            pooled.remove(match)
            del self.sessions[match.name]
            match.name, held, match.held = want["session"], bytes(match.held or b""), None
            self.sessions[match.name] = match
            adopted.append(match.name)
            if held:
                self.send({"ev": "out", "session": match.name, "data": _b64(held)})
        for session in pooled:
            del self.sessions[session.name]
            del self.by_pid[session.pid]  # reaped here, in silence: no host knew it
            with contextlib.suppress(ProcessLookupError):  # not reaped: its group is intact
                os.killpg(session.pid, signal.SIGKILL)
            os.waitpid(session.pid, 0)  # gone before the reply: ps shows none of them
            if session.master >= 0:
                os.close(session.master)
        return {"adopted": adopted}

    def op_foreground(self, req: dict) -> dict:
        """The session's foreground task and its state letter, as /proc shows it.

        The task a hung step is stuck in: the session's program itself (python3 -i),
        or the job a shell started in its own process group.
        """
        session = self.sessions[req["session"]]
        try:
            pid = os.tcgetpgrp(session.master)
        except OSError:
            pid = session.pid
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return {"pid": pid, "state": "", "comm": ""}
        # "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2 :].split()[0]
        return {"pid": pid, "state": state, "comm": comm}

    def op_input(self, req: dict) -> dict:
        session = self.sessions[req["session"]]
        data = base64.b64decode(req["data"])
        os.set_blocking(session.master, True)
        try:
            os.write(session.master, data)
        finally:
            os.set_blocking(session.master, False)
        return {}

    def op_put(self, req: dict) -> dict:
        """Write files under `root`, their bytes read in order from the transfer disk."""
        root = Path(req["root"])
        user = pwd.getpwnam(req["owner"]) if req.get("owner") else None
        entries = req["files"]
        for entry in entries:  # all checked before any is written
            rel = Path(entry["path"])
            if rel.is_absolute() or ".." in rel.parts:
                raise ValueError(f"put: {rel} is not a path under {root}")
        disk = TransferReader(find_transfer_disk(), sum(e["size"] for e in entries))
        try:
            for entry in entries:
                path = root / entry["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("wb") as out:
                    disk.copy(out, entry["size"])
                path.chmod(entry.get("mode", 0o644))
                if user is not None:
                    for p in [path, *_created_parents(path.parent, user.pw_dir)]:
                        os.chown(p, user.pw_uid, user.pw_gid)
        finally:
            disk.close()
        return {}


def _created_parents(directory: Path, home: str) -> list[Path]:
    """The directories between the user's home and `directory`."""
    out = []
    while str(directory).startswith(home + "/"):
        out.append(directory)
        directory = directory.parent
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _set_comm(name: bytes) -> None:
    """Name this process in ps: posts that look for python3 should find theirs only."""
    import ctypes

    pr_set_name = 15
    ctypes.CDLL(None).prctl(pr_set_name, ctypes.c_char_p(name), 0, 0, 0)


def main() -> None:
    _set_comm(b"kblog-agent")
    try:
        setup_system()
    except OSError as exc:
        print(f"kblog-agent: {exc}", file=sys.stderr)
    agent = None
    while agent is None:  # the port shows up once virtio_console has probed
        port = find_port()
        try:
            agent = Agent(port) if port else None
        except OSError:
            traceback.print_exc()
        if agent is None:
            time.sleep(0.05)
    # As PID 1 the agent must never exit: that would panic the kernel. A failure
    # restarts the loop only; the system set up above stays as it is.
    while True:
        try:
            agent.run()
        except Exception:
            traceback.print_exc()
            time.sleep(1)


if __name__ == "__main__":
    main()

"""The host end of the guest agent's channel (see runner/guest/agent/agent.py).

Every op the agent serves has one typed method here, and nothing else on the host
writes an op's name or its fields: the wire format lives in this module and in the
agent, and the protocol number only in the agent.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.guest.agent.agent import PROTOCOL


@dataclass(frozen=True)
class Program:
    """What a guest terminal runs: its argv, environment, user and working directory."""

    argv: Sequence[str]
    env: Mapping[str, str]
    user: str
    cwd: str

    def fields(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "env": dict(self.env), "user": self.user, "cwd": self.cwd}


@dataclass(frozen=True)
class ForegroundTask:
    """The task in the foreground of a session's terminal, as /proc shows it."""

    pid: int
    state: str  # /proc/PID/stat's state letter, e.g. "X" (dead) or "D" (uninterruptible)
    comm: str


# The longest line the host accepts from the guest. The agent's longest message is
# one read of a terminal (its READ_SIZE, 64 KiB) in base64, about 90 kB: a guest that
# sends more without a line end is broken or hostile, and the host's memory must not
# follow it.
MESSAGE_LIMIT = 1 << 20
RECV_SIZE = 65536


def put_parts(
    files: list[tuple[str, bytes, int]], capacity: int
) -> list[list[tuple[str, bytes, int]]]:
    """The files of a put in order, in parts whose bytes fit on the transfer disk."""
    parts: list[list[tuple[str, bytes, int]]] = []
    used = capacity
    for file in files:
        size = len(file[1])
        if size > capacity:
            raise ValueError(
                f"{file[0]} is {size:,} bytes: a file put in the guest may have "
                f"{capacity:,} (the transfer disk, config.TRANSFER_DISK_MB)"
            )
        if used + size > capacity:
            parts.append([])
            used = 0
        parts[-1].append(file)
        used += size
    return parts


class AgentError(RuntimeError):
    """The agent refused a request."""


class AgentLost(RuntimeError):
    """The channel to the agent closed or stopped answering."""


def connect_unix(
    path: Path, deadline: float, alive: Callable[[], bool] = lambda: True
) -> socket.socket | None:
    """A connection to a unix socket QEMU is about to create; None if it never
    accepted one before `deadline` (monotonic) or while `alive()` held."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except OSError:
            sock.close()
        if time.monotonic() > deadline or not alive():
            return None
        time.sleep(0.02)


class AgentClient:
    """Requests with replies, plus events (terminal output, exits) to handlers."""

    def __init__(self, sock: socket.socket, transfer: Path) -> None:
        self._sock = sock
        # The transfer disk's file (runner/guest/vm.py), and the put that owns it.
        self._transfer = transfer
        self._put_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._closed = False
        # Why the host dropped the channel (the guest broke the protocol); "" if it did not.
        self.failure = ""
        self.on_output: Callable[[str, bytes], None] = lambda session, data: None
        self.on_exit: Callable[[str, int], None] = lambda session, status: None
        # The agent's own log lines, and messages it sent that could not be read.
        self.on_log: Callable[[str], None] = lambda message: None
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    @classmethod
    def connect(
        cls, path: Path, transfer: Path, deadline: float, alive: Callable[[], bool]
    ) -> AgentClient:
        """Connect to QEMU's end of the port; QEMU creates the socket as it starts."""
        sock = connect_unix(path, deadline, alive)
        if sock is None:
            raise AgentLost(f"QEMU's agent socket {path} never accepted a connection")
        return cls(sock, transfer)

    @property
    def closed(self) -> bool:
        """Whether the channel is gone: closed by the guest, or dropped by the host."""
        with self._cond:
            return self._closed

    def _read_loop(self) -> None:
        buf = bytearray()
        try:
            while True:
                data = self._sock.recv(RECV_SIZE)
                if not data:
                    break
                # Only the new bytes are searched for a line end: an endless line costs
                # its length once, not its length once per chunk.
                end = data.find(b"\n")
                end = end + len(buf) if end >= 0 else -1
                buf += data
                while 0 <= end <= MESSAGE_LIMIT:
                    line = bytes(buf[:end])
                    del buf[: end + 1]
                    try:
                        self._dispatch(json.loads(line))
                    except Exception as exc:  # one bad message must not stop the channel
                        self.on_log(f"unreadable message from the agent: {exc!r}")
                    end = buf.find(b"\n")
                unended = end if end >= 0 else len(buf)
                if unended > MESSAGE_LIMIT:
                    self.failure = (
                        f"the guest sent {unended:,} bytes without a line end (a message "
                        f"may have {MESSAGE_LIMIT:,}): the agent channel was dropped"
                    )
                    self.on_log(self.failure)
                    break
        except OSError:
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _dispatch(self, msg: dict) -> None:
        event = msg.get("ev")
        if event == "out":
            self.on_output(msg["session"], base64.b64decode(msg["data"]))
        elif event == "exit":
            self.on_exit(msg["session"], msg["status"])
        elif event == "log":
            self.on_log(msg["message"])
        else:
            with self._cond:
                self._replies[msg["id"]] = msg
                self._cond.notify_all()

    def send(self, op: str, **fields: object) -> int:
        """Send a request; its reply is for wait()."""
        with self._send_lock:
            rid = next(self._ids)
            data = json.dumps({"id": rid, "op": op, **fields}).encode() + b"\n"
            try:
                self._sock.sendall(data)
            except OSError as exc:
                raise AgentLost(f"agent channel closed: {exc}") from exc
        return rid

    def wait(self, rid: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._replies:
                remaining = deadline - time.monotonic()
                if self._closed:
                    raise AgentLost(self.failure or "agent channel closed")
                if remaining <= 0:
                    raise AgentLost(f"agent did not answer within {timeout:.0f} s")
                self._cond.wait(remaining)
            reply = self._replies.pop(rid)
        if not reply.get("ok"):
            raise AgentError(reply.get("error", "unknown agent error"))
        return reply

    def request(self, op: str, timeout: float = 30.0, **fields: object) -> dict:
        return self.wait(self.send(op, **fields), timeout)

    # --- the ops, one method each ----------------------------------------------------

    def hello(self, timeout: float = 5.0) -> str:
        """The guest kernel's release (`uname -r`)."""
        return str(self.request("hello", timeout=timeout)["kernel"])

    def handshake(self, deadline: float, alive: Callable[[], bool]) -> dict:
        """Say hello until the agent answers: it starts late in the guest's boot."""
        while True:
            rid = self.send("hello")
            try:
                reply = self.wait(rid, min(1.0, max(0.05, deadline - time.monotonic())))
            except AgentLost:
                if self._closed or time.monotonic() > deadline or not alive():
                    raise
                continue
            if reply.get("protocol") != PROTOCOL:
                raise AgentError(
                    f"guest agent speaks protocol {reply.get('protocol')}, not {PROTOCOL}"
                )
            return reply

    def settime(self, epoch: float) -> None:
        """Set the guest's clock (a restored guest's stands where it was saved)."""
        self.request("settime", epoch=epoch)

    def spawn(self, session: str, program: Program, pool: bool = False) -> None:
        """Start `program` on a new pty as `session`; a pooled one holds its output
        until a run adopts it."""
        self.request("spawn", session=session, pool=pool, **program.fields())

    def pool(self) -> dict[str, bytes]:
        """The pooled sessions and what each has printed so far."""
        held = self.request("pool")["sessions"]
        return {name: base64.b64decode(out) for name, out in held.items()}

    def adopt(self, wanted: Mapping[str, Program]) -> list[str]:
        """Take pooled terminals for the sessions `wanted`, in order; the agent ends
        the pooled ones left over. The names it could serve."""
        sessions = [{"session": name, **program.fields()} for name, program in wanted.items()]
        return list(self.request("adopt", sessions=sessions)["adopted"])

    def input(self, session: str, data: bytes) -> None:
        """Type `data` into the session's terminal."""
        self.request("input", session=session, data=base64.b64encode(data).decode())

    def foreground(self, session: str, timeout: float = 5.0) -> ForegroundTask | None:
        """The task in the foreground of the session's terminal, if the agent sees one."""
        reply = self.request("foreground", session=session, timeout=timeout)
        if not reply.get("state"):
            return None
        return ForegroundTask(
            int(reply.get("pid", 0)), str(reply["state"]), str(reply.get("comm", ""))
        )

    def put(self, root: str, files: list[tuple[str, bytes, int]], owner: str | None = None) -> None:
        """Write (path under `root`, content, mode) files in the guest, owned by `owner`.
        Their bytes go on the transfer disk, one after the other from its start, and
        the request names their sizes: the agent reads them from there."""
        with self._put_lock, self._transfer.open("r+b") as disk:
            capacity = disk.seek(0, os.SEEK_END)
            for part in put_parts(files, capacity):
                disk.seek(0)
                for _, data, _ in part:
                    disk.write(data)
                disk.flush()  # QEMU reads the file through its own descriptor
                entries = [{"path": p, "size": len(data), "mode": m} for p, data, m in part]
                # A put's time is the guest's copy of its bytes, about 100 MB/s under TCG.
                timeout = 30.0 + sum(len(data) for _, data, _ in part) / 10e6
                self.request("put", timeout=timeout, root=root, files=entries, owner=owner)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(timeout=2)

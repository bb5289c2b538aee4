"""A minimal QMP client: enough to migrate a guest's state to a file and quit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from runner.guest.agent_client import connect_unix


class QMPError(RuntimeError):
    """QEMU's monitor refused a command or went away."""


class QMP:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        sock = connect_unix(path, time.monotonic() + timeout)
        if sock is None:
            raise QMPError(f"no QMP socket at {path}")
        self.sock = sock
        self.sock.settimeout(timeout)
        self._file = self.sock.makefile("rb")
        self._read()  # the greeting
        self.command("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self._file.readline()
        if not line:
            raise QMPError("QEMU closed its monitor")
        return json.loads(line)

    def command(self, name: str, **arguments: Any) -> Any:
        msg: dict[str, Any] = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QMPError(f"{name}: {reply['error'].get('desc', reply['error'])}")
            # anything else is an asynchronous event: not needed here

    def close(self) -> None:
        self._file.close()
        self.sock.close()

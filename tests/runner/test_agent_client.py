"""The host end of the agent channel against a fake guest: a socket pair, no VM."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.guest import agent_client
from runner.guest.agent_client import MESSAGE_LIMIT, AgentClient, AgentLost


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[AgentClient, socket.socket]]:
    host, guest = socket.socketpair()
    client = AgentClient(host, tmp_path / "transfer.img")  # no test here puts files
    yield client, guest
    guest.close()
    client.close()


def wait_closed(client: AgentClient, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not client.closed and time.monotonic() < deadline:
        time.sleep(0.01)


def test_messages_in_pieces_and_many_to_a_chunk(pair: tuple[AgentClient, socket.socket]) -> None:
    client, guest = pair
    got: list[bytes] = []
    client.on_output = lambda session, data: got.append(data)
    big = b"x" * (600 << 10)  # past a recv, within the limit
    stream = b"".join(
        json.dumps({"ev": "out", "session": "t", "data": base64.b64encode(d).decode()}).encode()
        + b"\n"
        for d in (b"one", big, b"two", b"three")
    )
    for n in range(0, len(stream), 7001):
        guest.sendall(stream[n : n + 7001])
    guest.sendall(b'{"id": 1, "ok": true}\n')
    assert client.wait(1, timeout=5) == {"id": 1, "ok": True}
    assert got == [b"one", big, b"two", b"three"]


def test_an_endless_line_drops_the_channel(pair: tuple[AgentClient, socket.socket]) -> None:
    client, guest = pair
    logged: list[str] = []
    client.on_log = logged.append
    rid = client.send("hello")
    guest.settimeout(1)
    chunk = b"a" * 65536
    sent = 0
    with pytest.raises(OSError):  # the host stops reading: the guest's writes block
        while sent < 64 * MESSAGE_LIMIT:
            guest.sendall(chunk)
            sent += len(chunk)
    wait_closed(client)
    assert client.closed
    assert sent < 64 * MESSAGE_LIMIT
    m = re.match(r"the guest sent ([\d,]+) bytes without a line end", client.failure)
    assert m, client.failure
    # What the host held: the limit and one read more at most, not what the guest sent.
    assert int(m.group(1).replace(",", "")) <= MESSAGE_LIMIT + agent_client.RECV_SIZE
    assert logged == [client.failure]
    with pytest.raises(AgentLost, match="without a line end"):
        client.wait(rid, timeout=5)


def test_a_huge_message_with_its_line_end_is_refused(
    pair: tuple[AgentClient, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One chunk holding a whole line longer than the limit: refused, not parsed."""
    client, guest = pair
    monkeypatch.setattr(agent_client, "MESSAGE_LIMIT", 1000)
    got: list[bytes] = []
    client.on_output = lambda session, data: got.append(data)
    line = json.dumps({"ev": "out", "session": "t", "data": "eA==" * 400}).encode()
    guest.sendall(line + b"\n")
    wait_closed(client)
    assert client.closed and got == []
    assert client.failure.startswith(f"the guest sent {len(line):,} bytes without a line end")

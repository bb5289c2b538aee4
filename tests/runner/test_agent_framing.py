"""The agent's reading of the host's stream, without a VM: request lines arrive
whole, however the port splits them, and a put's files are cut into parts that fit
on the transfer disk."""

from __future__ import annotations

import json

import pytest

from runner.guest.agent.agent import Agent
from runner.guest.agent_client import put_parts


def reader() -> tuple[Agent, list[dict]]:
    """An agent with nothing but its reading state; what it would serve is recorded."""
    agent = Agent.__new__(Agent)  # no port, no signals: only the parsing is exercised
    agent.inbuf, agent.outbuf = bytearray(), bytearray()
    served: list[dict] = []
    agent.handle = served.append  # type: ignore[method-assign]
    return agent, served


def stream() -> bytes:
    lines = [
        {"id": 1, "op": "hello"},
        {"id": 2, "op": "input", "session": "t1", "data": "x" * 5000},
        {"id": 3, "op": "hello"},
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_requests_split_anywhere_arrive_whole(chunk: int) -> None:
    agent, served = reader()
    data = stream()
    for start in range(0, len(data), chunk):
        agent.take(data[start : start + chunk])
    assert [req["id"] for req in served] == [1, 2, 3]
    assert served[1]["data"] == "x" * 5000
    assert not agent.inbuf


def test_a_line_not_yet_ended_is_not_served() -> None:
    agent, served = reader()
    data = stream()
    cut = data.index(b'"x') + 10
    agent.take(data[:cut])
    assert [req["id"] for req in served] == [1]
    agent.take(data[cut:])
    assert [req["id"] for req in served] == [1, 2, 3]


def test_a_put_larger_than_the_disk_goes_in_parts_in_order() -> None:
    files = [(f"f{n}", b"x" * size, 0o644) for n, size in enumerate((60, 40, 1, 100, 0, 30))]
    parts = put_parts(files, capacity=100)
    assert [[name for name, _, _ in part] for part in parts] == [
        ["f0", "f1"],
        ["f2"],
        ["f3", "f4"],
        ["f5"],
    ]
    assert all(sum(len(data) for _, data, _ in part) <= 100 for part in parts)
    assert put_parts(files[:2], capacity=1000) == [files[:2]]
    assert put_parts([], capacity=100) == []


def test_a_file_larger_than_the_disk_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"big\.bin is 101 bytes"):
        put_parts([("small", b"x", 0o644), ("big.bin", b"x" * 101, 0o644)], capacity=100)

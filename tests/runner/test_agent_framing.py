"""The agent's reading of the host's stream, without a VM: request lines and the
payloads that follow some of them arrive whole, however the port splits them."""

from __future__ import annotations

import json
import os

import pytest

from runner.guest.agent.agent import Agent


def reader() -> tuple[Agent, list[dict]]:
    """An agent with nothing but its reading state; what it would serve is recorded."""
    agent = Agent.__new__(Agent)  # no port, no signals: only the parsing is exercised
    agent.inbuf, agent.outbuf = bytearray(), bytearray()
    agent.waiting, agent.payload = None, bytearray()
    served: list[dict] = []
    agent.handle = served.append  # type: ignore[method-assign]
    return agent, served


def stream() -> tuple[bytes, bytes]:
    payload = os.urandom(5000) + b"\n{}\n"  # a payload may hold anything, line ends too
    lines = [
        {"id": 1, "op": "hello"},
        {"id": 2, "op": "put", "payload": len(payload)},
        {"id": 3, "op": "hello"},
    ]
    head = json.dumps(lines[0]).encode() + b"\n" + json.dumps(lines[1]).encode() + b"\n"
    return head + payload + json.dumps(lines[2]).encode() + b"\n", payload


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_requests_and_payloads_split_anywhere(chunk: int) -> None:
    agent, served = reader()
    data, payload = stream()
    for start in range(0, len(data), chunk):
        agent.take(data[start : start + chunk])
    assert [req["id"] for req in served] == [1, 2, 3]
    assert served[1]["payload"] == payload
    assert "payload" not in served[0] and "payload" not in served[2]
    assert agent.waiting is None and not agent.inbuf and not agent.payload


def test_a_payload_not_yet_whole_is_not_served() -> None:
    agent, served = reader()
    data, payload = stream()
    cut = data.index(payload) + len(payload) - 1
    agent.take(data[:cut])
    assert [req["id"] for req in served] == [1]
    agent.take(data[cut:])
    assert [req["id"] for req in served] == [1, 2, 3]

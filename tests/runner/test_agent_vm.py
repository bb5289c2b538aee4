"""The guest agent, spoken to directly in a restored guest."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from vmhelp import Guest

from runner import config, terminal
from runner.guest import sessions as guest_session
from runner.guest import snapshot
from runner.guest.agent_client import AgentClient
from runner.guest.vm import VM

pytestmark = pytest.mark.vm


def test_a_program_s_last_output_arrives_before_its_exit(guest: Guest) -> None:
    """Output still in the pty when its program exits is forwarded, then the exit:
    nothing a short-lived program printed last is lost."""
    artifacts, accel = guest
    with VM(artifacts, accel, restore=snapshot.ensure(artifacts, accel, lambda m: None)) as vm:
        agent = vm.agent
        assert agent is not None
        outputs: dict[str, bytearray] = {}
        exits: dict[str, threading.Event] = {}
        agent.on_output = lambda name, data: outputs[name].extend(data)
        agent.on_exit = lambda name, status: exits[name].set()
        # A long output, then short ones: the last write is the one a reader of the
        # pty may find missing when it looks right after the exit.
        programs = ["seq 1 3000; echo last-line"] + [
            "sudo -n dmesg | tail -n 1; echo last-line"
        ] * 10
        for n, program in enumerate(programs):
            name = f"s{n}"
            outputs[name], exits[name] = bytearray(), threading.Event()
            agent.request(
                "spawn", session=name, argv=["bash", "-c", program], user=config.GUEST_USER
            )
            assert exits[name].wait(30), f"{name} never exited"
            lines = outputs[name].decode().replace("\r", "").split("\n")
            assert lines[-2:] == ["last-line", ""], (program, lines[-3:])
        assert len(outputs["s0"].decode().splitlines()) == 3001


def test_a_restored_guest_hands_over_its_idle_terminals_and_ends_the_rest(guest: Guest) -> None:
    """The saved guest keeps two shells and a Python at their prompts. A host adopts
    those whose program it asks for, under its own names, and sees their prompts;
    one the pool lacks is not served; the pooled ones left over are gone."""
    artifacts, accel = guest
    with VM(artifacts, accel, restore=snapshot.ensure(artifacts, accel, lambda m: None)) as vm:
        agent = vm.agent
        assert agent is not None
        outputs: dict[str, bytearray] = {name: bytearray() for name in ("a", "b", "c")}
        agent.on_output = lambda name, data: outputs[name].extend(data)
        adopted = guest_session.adopt(agent, {"a": "python", "b": "shell", "c": "python"})
        assert adopted == ["a", "b"]
        deadline = time.monotonic() + 10
        while not all(terminal.MARKER.search(outputs[n]) for n in adopted):
            assert time.monotonic() < deadline, outputs
            time.sleep(0.05)
        assert agent.pool() == {}
        agent.input("b", PS)
        deadline = time.monotonic() + 10
        while len(terminal.MARKER.findall(outputs["b"])) < 2:  # the prompt after ps
            assert time.monotonic() < deadline, outputs["b"]
            time.sleep(0.05)
        seen = outputs["b"].decode().replace("\r", "").split("\n")
        # The user's processes: the adopted shell and Python, and ps; no second shell.
        assert "bash,ps,python3" in seen, seen


PS = b"ps -o comm= -u user >/tmp/ps; sort /tmp/ps | paste -sd,\n"


def _sha256_in_guest(agent: AgentClient, session: str, paths: list[str]) -> list[str]:
    done = threading.Event()
    out = bytearray()
    agent.on_output = lambda _name, data: out.extend(data)
    agent.on_exit = lambda _name, _status: done.set()
    listed = " ".join(paths)
    agent.request(
        "spawn", session=session, argv=["sh", "-c", f"cd {config.GUEST_HOME} && sha256sum {listed}"]
    )
    assert done.wait(30)
    return out.decode().split()[0::2]


def test_put_files_arrive_byte_for_byte_and_a_second_put_is_not_the_first(
    guest: Guest,
) -> None:
    """Files of odd sizes (not whole sectors of the transfer disk) arrive byte for
    byte; a second put of other bytes at the same place on the disk is read as
    itself, not as what the guest's page cache kept of the first."""
    artifacts, accel = guest
    sizes = (700_000, 1, 0, 5 << 20)
    with VM(artifacts, accel, restore=snapshot.ensure(artifacts, accel, lambda m: None)) as vm:
        agent = vm.agent
        assert agent is not None
        for round_ in range(2):
            files = [(f"blobs/{n}", os.urandom(size), 0o640) for n, size in enumerate(sizes)]
            agent.put(config.GUEST_HOME, files, owner=config.GUEST_USER)
            sums = _sha256_in_guest(agent, f"sum{round_}", [p for p, _, _ in files])
            assert sums == [hashlib.sha256(d).hexdigest() for _, d, _ in files], round_

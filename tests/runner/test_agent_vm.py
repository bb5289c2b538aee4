"""The guest agent, spoken to directly in a restored guest."""

from __future__ import annotations

import threading

import pytest
from vmhelp import Guest

from runner import config, snapshot
from runner.vm import VM

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

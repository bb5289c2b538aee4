"""gdb on the guest kernel through the docker backend: the docs' example of a
debugger session (tests/snippets/posts/docs-examples.md), run in a container as a
reader's `KBLOG_BACKEND=docker` build runs it. gdb comes from the image, and the
gdbstub's socket is the container's own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kblog.parse import read_post
from runner.backends import docker as docker_backend
from runner.backends.docker import run_in_container
from runner.judge import verdict
from runner.scenario import Status

if TYPE_CHECKING:
    import docker

POST = Path(__file__).resolve().parents[1] / "snippets" / "posts" / "docs-examples.md"
KERNEL = "6.1"  # one kernel: the backend's gdb path is the same on both


@pytest.mark.docker
@pytest.mark.vm
def test_a_gdb_session_runs_in_the_container_as_the_post_says(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    scenario = read_post(POST, "tests/snippets/posts/docs-examples.md").scenario
    scenario.name = "docs-examples-docker-test"  # its containers' label: this test's own
    result = run_in_container(scenario, KERNEL, client=docker_client, log=lambda _m: None)
    assert result.error == ""
    assert verdict.problems(scenario, result, KERNEL) == []
    gdb_steps = [
        (step, res)
        for step, res in zip(scenario.steps, result.steps, strict=True)
        if step.kind == "gdb"
    ]
    # As the post writes them: hbreak, continue; then continue (hit), bt 3, detach.
    typed = [res.input.split()[0] for _, res in gdb_steps]
    assert typed == ["hbreak", "continue", "continue", "bt", "detach"], typed
    # The first block's continue is left running (output=later) until the guest stops.
    statuses = [res.status for _, res in gdb_steps]
    ok, started = Status.OK, Status.STARTED
    assert statuses == [ok, started, ok, ok, ok], statuses
    # The breakpoint was hit (by uname(1)'s system call), and gdb let go of the guest.
    shown = "\n".join(res.output for _, res in gdb_steps)
    assert "Breakpoint 1, 0x" in shown and "[Inferior 1 (process 1) detached]" in shown, shown
    left = docker_client.containers.list(
        all=True, filters={"label": f"{docker_backend.RUN_LABEL}={scenario.name}"}
    )
    assert left == []

"""gdb and drgn on the guest kernel through the docker backend, as a reader's
`KBLOG_BACKEND=docker` build runs them: the docs' example of a debugger session
(tests/snippets/posts/docs-examples.md) on a stock kernel, and episode 4 whole, its
debug kernel built in the container. gdb comes from the image, drgn from the guest
userland the image carries, and the gdbstub's socket is the container's own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import real_post

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


EP4 = "ep4-looking-inside"


@pytest.mark.docker
@pytest.mark.vm
def test_episode_4_in_the_container_is_what_the_post_says_and_what_it_published(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    """The debug kernel built in the container's kernel volume (the first run on a
    machine builds it from the image's linux-source: minutes; later runs reuse it),
    gdb stopped in episode 3's system call, drgn reading /proc/kcore: every step as
    the post says, and no drift from the published capture."""
    post = real_post.read(EP4)
    post.scenario.name = f"{EP4}-docker-test"
    result = run_in_container(post.scenario, KERNEL, client=docker_client, log=lambda _m: None)
    assert result.error == ""
    assert real_post.problems(post, result, KERNEL) == []
    drgn = [r for r in result.steps if r.input.startswith("sudo drgn")]
    assert drgn and all(r.status == Status.OK for r in drgn), drgn
    assert real_post.drift_from_published(post, result, KERNEL) == ""
    left = docker_client.containers.list(
        all=True, filters={"label": f"{docker_backend.RUN_LABEL}={post.scenario.name}"}
    )
    assert left == []

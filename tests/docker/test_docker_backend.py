"""The docker backend: the real episode 2 as its page shows it, and failures said plainly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import real_post
from runnercli import cli

from runner import config
from runner.backends import docker as docker_backend
from runner.backends import docker_image
from runner.backends.docker import run_in_container
from runner.judge import expect
from runner.scenario import Scenario, ScenarioResult, Status, Step, StepResult

if TYPE_CHECKING:
    import docker

EP2 = "ep2-kernel-segfaults"
NOWHERE = "unix:///nonexistent/kblog-docker.sock"
# How the runner proves the read of freed module memory stuck for good (the page says it).
HANG_PROOF = re.compile(r"task \d+ \(python3\) is in state X \(dead\) after \d+\.\d s")


def ep2(name: str = EP2) -> Scenario:
    """Episode 2's scenario as the site reads it from content/ (renamed for a test's
    own containers)."""
    scenario = real_post.read(EP2).scenario
    scenario.name = name
    return scenario


def tiny(name: str) -> Scenario:
    return Scenario(name, [Step("t", "console", "uname -r")])


def leftovers(client: docker.DockerClient, name: str) -> list[str]:
    found = client.containers.list(
        all=True, filters={"label": f"{docker_backend.RUN_LABEL}={name}"}
    )
    for c in found:
        c.remove(force=True)
    return [c.short_id for c in found]


# --- without an engine ----------------------------------------------------------


def test_missing_engine_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    ok, why = docker_image.docker_available()
    assert not ok
    assert "\n" not in why
    assert why.startswith(f"no Docker engine answers at {NOWHERE}")


def test_cli_docker_backend_without_engine_says_why() -> None:
    stdin = json.dumps(ep2().to_json())
    proc = cli("-", "--backend", "docker", stdin=stdin, env={"DOCKER_HOST": NOWHERE})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"no Docker engine answers at {NOWHERE}" in proc.stderr


@pytest.mark.vm
def test_cli_auto_falls_back_to_local() -> None:
    proc = cli(
        "-",
        "--backend",
        "auto",
        "--json",
        stdin=json.dumps(tiny("auto-fallback").to_json()),
        env={"DOCKER_HOST": NOWHERE},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"backend: local (no Docker engine answers at {NOWHERE}" in proc.stderr
    result = ScenarioResult.from_json(json.loads(proc.stdout))
    assert result.steps[0].output.strip() == result.provenance.kernel


# --- with an engine ---------------------------------------------------------------


@pytest.mark.docker
def test_image_is_reused_while_its_inputs_hold(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    tag, built = docker_image.ensure_image(docker_client, log=lambda msg: None)
    assert (tag, built) == (runner_image, False)
    label = docker_client.images.get(tag).labels[docker_image.INPUTS_LABEL]
    base = docker_image.ensure_base(docker_client, log=lambda msg: None)
    assert label == docker_image.inputs_digest(docker_client.images.get(base).id)


@dataclass
class Ep2Run:
    """Episode 2 run once in a container on one kernel, and what the run reported."""

    kernel: str
    post: real_post.Post
    result: ScenarioResult
    progress: list[tuple[int, bool]] = field(default_factory=list)  # (step, started)
    log: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # containers the run left behind


@pytest.fixture(scope="module", params=list(config.KERNELS))
def ep2_in_docker(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, runner_image: str
) -> Iterator[Ep2Run]:
    """The real episode 2, run through the docker backend as a build with
    KBLOG_BACKEND=docker runs it, on each kernel the posts are captured on."""
    kernel: str = request.param
    post = real_post.read(EP2)
    # Its containers' label: a test's own, never that of a build running the post.
    post.scenario.name = f"{EP2}-docker-test"
    progress: list[tuple[int, bool]] = []
    log: list[str] = []

    def seen(index: int, total: int, step: Step, res: StepResult | None) -> None:
        progress.append((index, res is None))

    result = run_in_container(
        post.scenario, kernel, client=docker_client, progress=seen, log=log.append
    )
    left = leftovers(docker_client, post.scenario.name)
    yield Ep2Run(kernel, post, result, progress, log, left)


@pytest.mark.docker
@pytest.mark.vm
def test_ep2_in_docker_is_what_the_post_says(ep2_in_docker: Ep2Run) -> None:
    """Every step judged as the site build judges it: status, output, kernel events."""
    run = ep2_in_docker
    assert run.result.error == ""
    assert len(run.result.steps) == len(run.post.scenario.steps) == 27
    assert real_post.problems(run.post, run.result, run.kernel) == []
    assert real_post.outputs_judged_here(run.post, run.result, run.kernel) == []


@pytest.mark.docker
@pytest.mark.vm
def test_ep2_in_docker_shows_the_oops_and_the_stuck_read(ep2_in_docker: Ep2Run) -> None:
    """What a reader sees: the read of freed module memory is proven stuck for good,
    its log shows the oops the post declares, and no other step troubles the kernel."""
    run = ep2_in_docker
    steps = run.post.scenario.steps
    (hang,) = [n for n, step in enumerate(steps) if step.expect_hang]
    assert (steps[hang].session, steps[hang].input) == ("py", "f.read()")
    statuses = [r.status for r in run.result.steps]
    assert statuses == [Status.HANG if n == hang else Status.OK for n in range(len(steps))]
    read = run.result.steps[hang]
    assert HANG_PROOF.fullmatch(read.hang_proof), read.hang_proof
    declared = expect.events_for_kernel(steps[hang].kernel_events, run.kernel)
    assert declared == ["page-fault", "Oops", "recursive-fault"]
    kinds = [e.kind for e in read.events]
    assert set(kinds) == set(declared), kinds
    assert any("BUG: unable to handle page fault" in e.line for e in read.events)
    assert any("Fixing recursive fault but reboot is needed!" in e.line for e in read.events)
    assert [n for n, r in enumerate(run.result.steps) if r.events] == [hang]
    # The next step asks dmesg, and the reader sees the oops there too.
    assert steps[hang + 1].input == "sudo dmesg | grep -A 5 'BUG:'"
    dmesg = run.result.steps[hang + 1].output
    assert "BUG: unable to handle page fault for address:" in dmesg
    assert re.search(r"\] Oops: (Oops: )?0000 \[#1\]", dmesg), dmesg


@pytest.mark.docker
@pytest.mark.vm
def test_ep2_in_docker_matches_the_published_capture(ep2_in_docker: Ep2Run) -> None:
    """No drift from snippets/: the container's run is the capture the page shows."""
    run = ep2_in_docker
    published = run.post.capture(run.kernel).result
    assert real_post.drift_from_published(run.post, run.result, run.kernel) == ""
    # drift() compares statuses and outputs; the events must agree as well.
    assert [[e.kind for e in r.events] for r in run.result.steps] == [
        [e.kind for e in s.events] for s in published.steps
    ]
    prov = run.result.provenance
    assert prov.kernel == config.kernel(run.kernel).release == published.provenance.kernel
    assert prov.kernel_package == published.provenance.kernel_package


@pytest.mark.docker
@pytest.mark.vm
def test_ep2_in_docker_reports_progress_and_leaves_nothing(ep2_in_docker: Ep2Run) -> None:
    """The live display gets each step's start and end, in order, from the container;
    the container is gone when the run returns."""
    run = ep2_in_docker
    n = len(run.post.scenario.steps)
    assert run.progress == [(i, start) for i in range(n) for start in (True, False)]
    assert any(re.match(r"container \w+ started \(", line) for line in run.log), run.log
    assert run.left == []


@pytest.mark.docker
@pytest.mark.vm
def test_interrupt_removes_the_container(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    sc = ep2("ep2-interrupted")

    def progress(index: int, total: int, step: Step, res: StepResult | None) -> None:
        if index == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in_container(sc, client=docker_client, progress=progress, log=lambda m: None)
    assert leftovers(docker_client, sc.name) == []


@pytest.mark.docker
@pytest.mark.vm
def test_the_container_runs_with_least_privilege(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    """Looked at while it runs: its settings, and its runner process as the kernel sees it."""
    sc = Scenario("least-privilege", [Step("t", "console", "uname -r")])
    seen: dict[str, Any] = {}

    def progress(index: int, total: int, step: Step, res: StepResult | None) -> None:
        if seen:
            return
        (container,) = docker_client.containers.list(
            filters={"label": f"{docker_backend.RUN_LABEL}={sc.name}"}
        )
        seen["attrs"] = container.attrs
        status = container.exec_run(["cat", "/proc/1/status"]).output.decode()
        seen["status"] = dict(line.split(":\t", 1) for line in status.splitlines())
        probe = container.exec_run(["touch", "/opt/kblog/probe"])
        seen["write"] = (probe.exit_code, probe.output.decode())
        # /proc is unmasked for the build sandbox; what the masks hid stays root's.
        sysctl = container.exec_run(["sh", "-c", "echo 1 > /proc/sys/vm/drop_caches"])
        seen["sysctl"] = (sysctl.exit_code, sysctl.output.decode())

    result = run_in_container(sc, client=docker_client, progress=progress, log=lambda m: None)
    assert result.steps[0].status == "ok"
    config, host = seen["attrs"]["Config"], seen["attrs"]["HostConfig"]
    assert config["User"] == "1000:1000"
    assert config["NetworkDisabled"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert set(host["Tmpfs"]) == {"/tmp"}
    assert host["MaskedPaths"] == host["ReadonlyPaths"] == []
    # No usable KVM on this host: no device at all. Where KVM works it is the one device.
    devices = [d["PathOnHost"] for d in host["Devices"] or []]
    assert devices == (["/dev/kvm"] if docker_backend.kvm_devices()[0] else [])
    status = seen["status"]
    assert status["Uid"].split() == ["1000"] * 4
    assert status["CapEff"].strip() == status["CapBnd"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a filter, ours
    assert seen["write"][0] != 0 and "Read-only file system" in seen["write"][1]
    assert seen["sysctl"][0] != 0 and "Permission denied" in seen["sysctl"][1]
    assert leftovers(docker_client, sc.name) == []


def test_permission_denied_is_one_line() -> None:
    exc = OSError("Error while fetching server API version")
    exc.__cause__ = PermissionError(13, "Permission denied")
    why = docker_image.explain(exc)
    assert "\n" not in why
    assert why.startswith("permission denied on the Docker socket")
    assert "docker group" in why


@pytest.mark.docker
@pytest.mark.vm
def test_containers_of_killed_runners_are_swept(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    """A run removes the containers a killed runner on this host left, and only those."""
    dead_pid = subprocess.Popen(["true"])  # a pid that no longer runs
    dead_pid.wait()
    here = socket.gethostname()
    made = {}
    for name, pid in (("dead", dead_pid.pid), ("alive", os.getpid())):
        made[name] = docker_client.api.create_container(
            runner_image,
            command=["--help"],
            labels={
                docker_backend.RUN_LABEL: f"sweep-{name}",
                docker_backend.OWNER_LABEL: f"{here}:{pid}",
            },
        )["Id"]
    try:
        result = run_in_container(tiny("sweep"), client=docker_client, log=lambda m: None)
        assert result.steps[0].status == "ok"
        left = {c.id for c in docker_client.containers.list(all=True)}
        assert made["dead"] not in left
        assert made["alive"] in left
    finally:
        for cid in made.values():
            with contextlib.suppress(Exception):
                docker_client.api.remove_container(cid, force=True, v=True)


@pytest.mark.docker
@pytest.mark.vm
def test_ctrl_c_at_the_terminal_ends_a_docker_run_with_130(
    docker_client: docker.DockerClient, runner_image: str, tmp_path
) -> None:
    """SIGINT to the process group of `python -m runner --backend docker`, as a terminal
    sends it, while a step runs in the container: exit 130, "interrupted", never a
    lost guest, and no container of the run left."""
    import signal
    import sys
    import time

    name = "ctrl-c-in-docker"
    path = tmp_path / "scenario.json"
    sc = Scenario(name, [Step("t", "console", "sleep 300", timeout=400, source="p.md:3")])
    path.write_text(json.dumps(sc.to_json()))
    env = dict(os.environ, PYTHONPATH=str(real_post.ROOT), PYTHONUNBUFFERED="1")
    runner = subprocess.Popen(
        [sys.executable, "-m", "runner", str(path), "--backend", "docker"],
        cwd=real_post.ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        assert runner.stdout is not None
        for line in runner.stdout:
            output.append(line)
            if "container" in line and "started" in line:
                break
        time.sleep(3)  # the guest boots inside and the step starts
        os.killpg(runner.pid, signal.SIGINT)
        output.append(runner.stdout.read())
        status = runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    shown = "".join(output)
    assert status == 130, shown
    assert "interrupted" in shown and "lost" not in shown, shown
    assert leftovers(docker_client, name) == [], shown

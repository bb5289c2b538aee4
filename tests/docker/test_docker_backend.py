"""The docker backend: the captures the local backend makes, and failures said plainly."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from runnercli import cli

from runner.backends import docker as docker_backend
from runner.backends import docker_image
from runner.backends.docker import run_in_container
from runner.judge.normalize import normalize as blank
from runner.scenario import Scenario, ScenarioResult, Step, StepResult

if TYPE_CHECKING:
    import docker

ROOT = Path(__file__).resolve().parents[2]
EP2 = Path(__file__).resolve().parent / "ep2.json"
NOWHERE = "unix:///nonexistent/kblog-docker.sock"


# Both backends build in the same sandbox, with the same paths; runner.judge.normalize
# blanks what changes from run to run (printk times, addresses, PIDs, majors).
def normalize(text: str) -> list[str]:
    return [blank(line) for line in text.splitlines()]


def captures(result: ScenarioResult) -> list[dict[str, Any]]:
    """What each step showed, normalised; kernel events by kind and first line."""
    return [
        {
            "status": s.status,
            "prompt": s.prompt,
            "input": normalize(s.input),
            "exit_status": s.exit_status,
            "output": normalize(s.output),
            "matched": s.matched,
            "events": [(e.kind, normalize(e.line)) for e in s.events],
        }
        for s in result.steps
    ]


def scenario(name: str = "ep2") -> Scenario:
    sc = Scenario.from_json(json.loads(EP2.read_text()))
    sc.name = name
    return sc


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
    proc = cli(str(EP2), "--backend", "docker", env={"DOCKER_HOST": NOWHERE})
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


@pytest.mark.docker
@pytest.mark.vm
def test_ep2_captures_match_the_local_backend(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    # Locally, through the CLI's stdin and event modes (what the container runs).
    local = cli("-", "--json", "--events", "--backend", "local", stdin=EP2.read_text())
    assert local.returncode in (0, 1), local.stderr
    events = [json.loads(line) for line in local.stderr.splitlines()]
    local_result = ScenarioResult.from_json(json.loads(local.stdout))

    seen: list[tuple[int, bool]] = []

    def progress(index: int, total: int, step: Step, res: StepResult | None) -> None:
        seen.append((index, res is None))

    sc = scenario("ep2-docker-test")
    in_docker = run_in_container(sc, client=docker_client, progress=progress, log=lambda m: None)

    n = len(sc.steps)
    assert seen == [(i, start) for i in range(n) for start in (True, False)]
    step_events = [(e["index"], e["result"] is None) for e in events if e["event"] == "step"]
    assert step_events == seen
    assert captures(in_docker) == captures(local_result)
    for field in ("kernel", "kernel_package", "accel", "qemu"):
        assert getattr(in_docker.provenance, field) == getattr(local_result.provenance, field)
    assert in_docker.error == local_result.error
    assert leftovers(docker_client, sc.name) == []


@pytest.mark.docker
@pytest.mark.vm
def test_interrupt_removes_the_container(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    sc = scenario("ep2-interrupted")

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

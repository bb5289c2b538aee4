"""A post that builds the kernel, run in the sandbox container as a reader's Docker runs it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from syscall_post import check_syscall_run, syscall_scenario

from runner.backends import docker as docker_backend
from runner.backends.docker import run_in_container
from runner.kernels import source as kernel_source

if TYPE_CHECKING:
    import docker

pytestmark = [pytest.mark.docker, pytest.mark.vm]


def _anonymous_volumes(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list() if v.name != docker_backend.KERNEL_CACHE_VOLUME}


def test_the_syscall_post_builds_and_boots_its_kernel_in_the_container(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    """The kernel patched, built and booted inside the container, as the local VM test
    does on this host (tests/runner/test_kernel_build.py).

    The first run on a machine is a cold kernel build: the image's linux-source is
    unpacked into the named volume kblog-kernel-build (about 30 s), then built (the
    whole run took 209 s on 2 cores under TCG). The volume keeps the workspace, so a
    later run rebuilds incrementally (8 s; about 20 s more when the built kernel's
    guest must be saved again). The volume stays on purpose; the container and its
    input volume do not.
    """
    volumes_before = _anonymous_volumes(docker_client)
    scenario = syscall_scenario("syscall-docker-test")
    lines: list[str] = []
    started = time.monotonic()
    result = run_in_container(scenario, "6.1", client=docker_client, log=lines.append)
    print(f"run in the container: {time.monotonic() - started:.0f} s")
    check_syscall_run(scenario, result)
    assert any("container" in line and "started" in line for line in lines), lines
    left = docker_client.containers.list(
        all=True, filters={"label": f"{docker_backend.RUN_LABEL}={scenario.name}"}
    )
    assert left == []
    assert _anonymous_volumes(docker_client) <= volumes_before  # the input volume went too
    cache = docker_client.volumes.get(docker_backend.KERNEL_CACHE_VOLUME)
    assert cache.attrs["Labels"] == {docker_backend.CACHE_LABEL: "kernel-build"}


def test_the_image_carries_the_linux_source_the_host_keys_posts_by(
    docker_client: docker.DockerClient, runner_image: str
) -> None:
    """Posts that build the kernel are keyed on the host by the linux-source version
    its apt offers; the container builds from the .deb its image keeps: the same one."""
    shown = docker_client.containers.run(
        runner_image,
        entrypoint=["sh", "-c", 'dpkg-deb --field "$KBLOG_KERNEL_SOURCE_DEB" Version'],
        network_mode="none",
        remove=True,
    )
    assert shown.decode().strip() == kernel_source.candidate_version()

"""The docker backend: the same scenario run, inside a fresh container.

The image (runner/Dockerfile) holds QEMU, the build tools, the guest kernels'
headers and the guest artifacts, built in advance. Each run starts a fresh
container from it, copies the kmod/ tree in, feeds the scenario to
`python3 -m runner - --json --events` on stdin, relays the progress and activity
events it writes on stderr and reads the result from stdout; the container is removed
however the run ends.

The image and the engine are runner/docker_image.py's business.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import config, host, sources
from runner.docker_image import DockerBackendError, connect, ensure_image
from runner.events import Activity, Log, Progress, Relay
from runner.scenario import Scenario, ScenarioResult

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container


HERE = Path(__file__).resolve().parent
RUN_LABEL = "org.kblog.run"
OWNER_LABEL = "org.kblog.owner"  # host:pid of the runner that started the container
WORKDIR = "/opt/kblog"  # the image's runner lives in WORKDIR/runner
KMOD_IN_CONTAINER = f"{WORKDIR}/kmod"  # a volume of the container: its root is read-only
CONTAINER_USER = "1000:1000"  # kblog, made by the Dockerfile
SECCOMP = HERE / "container-seccomp.json"
UNMASKED_PROC: dict[str, list[str]] = {"MaskedPaths": [], "ReadonlyPaths": []}
CONSOLE_IN_CONTAINER = "/tmp/console.log"
PASSED_ENV = ("KBLOG_ACCEL", "KBLOG_SNAPSHOTS")  # the runner's own switches, if set here

# --- a run ----------------------------------------------------------------------


def kvm_devices() -> tuple[list[str], str]:
    """(devices for the container, why): /dev/kvm only where KVM can be used at all.

    The same first checks as vm.choose_accel; inside the container the runner
    still makes its own smoke boot before trusting KVM.
    """
    early = host.kvm_precheck()
    if early is not None and early.name == "tcg":
        return [], f"{early.reason} on the host"
    return ["/dev/kvm:/dev/kvm:rwm"], "/dev/kvm passed to the container"


def least_privilege(devices: list[str]) -> dict[str, Any]:
    """The container's host config: what the runner needs and nothing more.

    A user of its own, no capability, no privilege gain through exec, a read-only
    root with a tmpfs for the run (VM sockets, console logs, build trees), no
    network (set on the container), and /dev/kvm only where KVM can work. The
    seccomp filter is ours: Docker's default one refuses the namespaces of the
    build steps' bubblewrap sandbox (runner/container-seccomp.json says more).
    And /proc is left unmasked, since the kernel refuses the sandbox a /proc of
    its own PID namespace over a masked one; what the masks hide (kcore, sysrq,
    writable sysctls) is root's alone, and this container has no root.
    """
    config: dict[str, Any] = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true", f"seccomp={SECCOMP.read_text()}"],
        "read_only": True,
        # exec: the build sandbox runs its uname from here (Docker mounts noexec by default)
        "tmpfs": {"/tmp": "rw,exec,nosuid,nodev,size=2g,mode=1777"},
        "devices": devices,
    }
    if devices:
        # /dev/kvm keeps its owner and mode in the container: its group lets the user in.
        with contextlib.suppress(OSError):
            config["group_add"] = [str(os.stat("/dev/kvm").st_gid)]
    return config


def _host_config(client: docker.DockerClient, devices: list[str]) -> dict[str, Any]:
    host_config: dict[str, Any] = client.api.create_host_config(**least_privilege(devices))
    # `--security-opt systempaths=unconfined` as the engine takes it (the SDK has no
    # keyword): empty lists, not absent ones, replace the default masks.
    host_config.update(UNMASKED_PROC)
    return host_config


def _tar_tree(root: Path, arcname: str) -> bytes:
    buf = io.BytesIO()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name.rsplit("/", 1)[-1]
        if info.name != arcname and sources.ignored(name):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=arcname, filter=keep)
    return buf.getvalue()


def _send_stdin(client: docker.DockerClient, container: Container, data: bytes) -> None:
    """Write `data` to the started container's stdin, then close it (EOF)."""
    sock = client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
    raw = getattr(sock, "_sock", sock)  # the SDK wraps the socket for http
    try:
        raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
    finally:
        sock.close()


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


def _start(container: Container) -> None:
    import docker.errors

    try:
        container.start()
    except docker.errors.APIError as exc:
        raise DockerBackendError(f"the container did not start: {exc}") from None


def _owner(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def _sweep_orphans(client: docker.DockerClient) -> None:
    """Remove containers whose runner on this host was killed before removing them."""
    here = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        owner_host, _, pid = container.labels.get(OWNER_LABEL, "").partition(":")
        if owner_host == here and pid.isdigit() and not host.pid_alive(int(pid)):
            _remove(client, container.id)


def _remove(client: docker.DockerClient, container_id: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.api.remove_container(container_id, force=True, v=True)  # and the kmod volume


def run_in_container(
    scenario: Scenario,
    kernel_name: str | None = None,
    *,
    kmod_dir: Path = config.KMOD,
    log: Log = print,
    progress: Progress | None = None,
    activity: Activity | None = None,
    console_copy: Path | None = None,
    client: docker.DockerClient | None = None,
) -> ScenarioResult:
    """Run `scenario` as run_scenario does, but in a fresh container of the image."""
    scenario.validate()
    kernel = config.kernel(kernel_name)
    if kernel != config.KERNELS[kernel.name]:  # a KBLOG_KERNEL_RELEASES override
        raise DockerBackendError(
            f"the sandbox image holds the pinned kernels only, not {kernel.release}: "
            "run with the local backend (KBLOG_BACKEND=local)"
        )
    client = client or connect()
    tag, _ = ensure_image(client, log)
    devices, device_reason = kvm_devices()
    command = ["-", "--json", "--events", "--backend", "local", "--kernel", kernel.name]
    command += ["--kmod", KMOD_IN_CONTAINER]
    if console_copy is not None:
        command += ["--console", CONSOLE_IN_CONTAINER]
    relay = Relay(scenario, log, progress, activity)
    _sweep_orphans(client)
    with contextlib.ExitStack() as stack:
        # The low-level call takes a host config; stdin_open implies StdinOnce
        # (the engine closes stdin when the attached writer disconnects).
        created = client.api.create_container(
            tag,
            command=command,
            stdin_open=True,
            user=CONTAINER_USER,
            network_disabled=True,  # the image holds everything; the guest has no NIC
            volumes=[KMOD_IN_CONTAINER],  # the one place put_archive can write
            labels={RUN_LABEL: scenario.name, OWNER_LABEL: _owner(os.getpid())},
            environment={k: os.environ[k] for k in PASSED_ENV if k in os.environ},
            host_config=_host_config(client, devices),
        )
        stack.callback(_remove, client, created["Id"])  # --rm, on any exit (Ctrl-C too)
        container = client.containers.get(created["Id"])
        container.put_archive(KMOD_IN_CONTAINER, _tar_tree(kmod_dir, "."))
        _start(container)
        log(f"container {container.short_id} started ({device_reason})")
        _send_stdin(client, container, json.dumps(scenario.to_json()).encode())
        for line in _lines(container.logs(stream=True, follow=True, stdout=False, stderr=True)):
            relay.line(line)
        status = container.wait().get("StatusCode", -1)
        out = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace")
        if console_copy is not None:
            _copy_out(container, CONSOLE_IN_CONTAINER, console_copy)
    if status not in (0, 1):
        why = relay.error or f"the runner in the container exited with status {status}"
        raise DockerBackendError(why)
    try:
        result = ScenarioResult.from_json(json.loads(out))
    except (ValueError, KeyError, TypeError) as exc:
        raise DockerBackendError(f"unreadable result from the container: {exc}") from None
    prov = result.provenance
    if not devices:  # the container's own reason ("no usable /dev/kvm") says less
        prov.accel_reason = f"{device_reason}, so the container got no /dev/kvm"
    return result


def _copy_out(container: Container, path: str, dest: Path) -> None:
    import docker.errors

    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        if member is not None:
            dest.write_bytes(member.read())

"""The docker backend: the same scenario run, inside a fresh container.

The image (runner/Dockerfile) holds QEMU, the build tools, the guest kernels'
headers and the guest artifacts, built in advance. Each run starts a fresh
container from it, copies the kmod/ tree in (and kernel/, for a scenario that
builds the kernel), feeds the scenario to `python3 -m runner - --json --events`
on stdin, relays the progress and activity events it writes on stderr and reads
the result from stdout; the container and its anonymous volume are removed
however the run ends. A container killed mid-run (`docker kill`, the OOM killer)
gives the result its events told: the step under way lost, the rest not run, as
the local backend reports a guest lost mid-step.

A scenario that builds the kernel also gets the named volume KERNEL_CACHE_VOLUME
at the image's kernel cache: Debian's source unpacked once, the build workspace,
the built images and their saved guests stay there, so the next run builds
incrementally. It stays on purpose; `docker volume rm kblog-kernel-build` frees it.

The image and the engine are runner/backends/docker_image.py's business.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import signal
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import config, host, interrupt, sources
from runner.backends import docker_image
from runner.backends.docker_image import DockerBackendError, connect, ensure_image
from runner.events import Activity, Log, Progress, Relay
from runner.scenario import Provenance, Scenario, ScenarioResult, Status, StepResult

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container


HERE = Path(__file__).resolve().parent
RUN_LABEL = "org.kblog.run"
OWNER_LABEL = "org.kblog.owner"  # host:pid of the runner that started the container
WORKDIR = "/opt/kblog"  # the image's runner lives in WORKDIR/runner
# The run's input: a volume of the container (its root is read-only), removed with it.
INPUT_IN_CONTAINER = f"{WORKDIR}/input"
KMOD_IN_CONTAINER = f"{INPUT_IN_CONTAINER}/kmod"
KERNEL_DIR_IN_CONTAINER = f"{INPUT_IN_CONTAINER}/kernel"
# Kernels built from source, kept between runs (docker_image.KERNEL_CACHE inside).
KERNEL_CACHE_VOLUME = "kblog-kernel-build"
CACHE_LABEL = "org.kblog.cache"
CONTAINER_USER = "1000:1000"  # kblog, made by the Dockerfile
SECCOMP = HERE / "container-seccomp.json"
UNMASKED_PROC: dict[str, list[str]] = {"MaskedPaths": [], "ReadonlyPaths": []}
CONSOLE_IN_CONTAINER = "/tmp/console.log"
PASSED_ENV = ("KBLOG_ACCEL", "KBLOG_SNAPSHOTS")  # the runner's own switches, if set here
INTERRUPT_GRACE = 10.0  # how long an interrupted runner in a container may take to tear down

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


def least_privilege(devices: list[str], builds_kernel: bool = False) -> dict[str, Any]:
    """The container's host config: what the runner needs and nothing more.

    A user of its own, no capability, no privilege gain through exec, a read-only
    root with a tmpfs for the run (VM sockets, console logs, build trees), no
    network (set on the container), and /dev/kvm only where KVM can work. A
    scenario that builds the kernel may also write the kernel cache volume. The
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
    if builds_kernel:
        config["binds"] = {KERNEL_CACHE_VOLUME: {"bind": docker_image.KERNEL_CACHE, "mode": "rw"}}
    if devices:
        # /dev/kvm keeps its owner and mode in the container: its group lets the user in.
        with contextlib.suppress(OSError):
            config["group_add"] = [str(os.stat("/dev/kvm").st_gid)]
    return config


def runner_command(kernel_name: str, builds_kernel: bool, console: bool) -> list[str]:
    """The runner's arguments in the container: the scenario on stdin, the input's paths."""
    command = ["-", "--json", "--events", "--backend", "local", "--kernel", kernel_name]
    command += ["--kmod", KMOD_IN_CONTAINER]
    if builds_kernel:
        command += ["--kernel-dir", KERNEL_DIR_IN_CONTAINER]
    if console:
        command += ["--console", CONSOLE_IN_CONTAINER]
    return command


def input_archive(kmod_dir: Path, kernel_dir: Path | None) -> bytes:
    """kmod/, and kernel/ when given, as a tar for INPUT_IN_CONTAINER. The trees are
    resolved first: a kmod/ that is a symlink is sent as the directory it names."""
    trees = {"kmod": kmod_dir.resolve()}
    if kernel_dir is not None:
        if not kernel_dir.is_dir():
            raise DockerBackendError(f"{kernel_dir}: no such directory (the kernel's config)")
        trees["kernel"] = kernel_dir.resolve()
    return _tar_trees(trees)


def ensure_kernel_cache(client: docker.DockerClient) -> None:
    """The named volume of kernels built from source, labelled, made if missing."""
    import docker.errors

    try:
        client.volumes.get(KERNEL_CACHE_VOLUME)
    except docker.errors.NotFound:
        client.volumes.create(KERNEL_CACHE_VOLUME, labels={CACHE_LABEL: "kernel-build"})


def _host_config(
    client: docker.DockerClient, devices: list[str], builds_kernel: bool
) -> dict[str, Any]:
    host_config: dict[str, Any] = client.api.create_host_config(
        **least_privilege(devices, builds_kernel)
    )
    # `--security-opt systempaths=unconfined` as the engine takes it (the SDK has no
    # keyword): empty lists, not absent ones, replace the default masks.
    host_config.update(UNMASKED_PROC)
    return host_config


def _tar_trees(trees: dict[str, Path]) -> bytes:
    """A tar of each tree under its name, less what sources.IGNORE leaves out."""
    buf = io.BytesIO()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name.rsplit("/", 1)[-1]
        if info.name not in trees and sources.ignored(name):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arcname, root in trees.items():
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
        # v: and its anonymous volume (the input); a named one (the kernel cache) stays
        client.api.remove_container(container_id, force=True, v=True)


def _interrupt(client: docker.DockerClient, container_id: str, wait: float = 0.0) -> None:
    """SIGINT to the runner in the container (its PID 1), as Ctrl-C at its terminal;
    with `wait`, give it that long to stop."""
    import docker.errors

    # Gone already, or the engine did not answer in time: the removal still follows.
    with contextlib.suppress(docker.errors.DockerException, OSError):
        client.api.kill(container_id, signal="SIGINT")
        if wait:
            client.api.wait(container_id, timeout=wait)


def run_in_container(
    scenario: Scenario,
    kernel_name: str | None = None,
    *,
    kmod_dir: Path = config.KMOD,
    kernel_dir: Path = config.KERNEL_DIR,
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
    builds_kernel = scenario.builds_kernel
    archive = input_archive(kmod_dir, kernel_dir if builds_kernel else None)
    client = client or connect()
    tag, _ = ensure_image(client, log)
    devices, device_reason = kvm_devices()
    command = runner_command(kernel.name, builds_kernel, console_copy is not None)
    if builds_kernel:
        ensure_kernel_cache(client)
    relay = Relay(scenario, log, progress, activity)
    _sweep_orphans(client)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        # The low-level call takes a host config; stdin_open implies StdinOnce
        # (the engine closes stdin when the attached writer disconnects).
        created = client.api.create_container(
            tag,
            command=command,
            stdin_open=True,
            user=CONTAINER_USER,
            network_disabled=True,  # the image holds everything; the guest has no NIC
            volumes=[INPUT_IN_CONTAINER],  # the one place put_archive can write
            labels={RUN_LABEL: scenario.name, OWNER_LABEL: _owner(os.getpid())},
            environment={k: os.environ[k] for k in PASSED_ENV if k in os.environ},
            host_config=_host_config(client, devices, builds_kernel),
        )
        stack.callback(_remove, client, created["Id"])  # --rm, on any exit (Ctrl-C too)
        container = client.containers.get(created["Id"])
        container.put_archive(INPUT_IN_CONTAINER, archive)
        _start(container)
        # An interrupt in another thread (a site build's parallel posts) stops the
        # runner inside as Ctrl-C would; then its logs end and this run unwinds.
        stack.enter_context(interrupt.stops(lambda: _interrupt(client, created["Id"])))
        log(f"container {container.short_id} started ({device_reason})")
        try:
            _send_stdin(client, container, json.dumps(scenario.to_json()).encode())
            logs = container.logs(stream=True, follow=True, stdout=False, stderr=True)
            for line in _lines(logs):
                relay.line(line)
            status = container.wait().get("StatusCode", -1)
        except KeyboardInterrupt:
            # SIGINT reaches the runner inside, which tears its guest down, before
            # the container is removed (on the stack).
            _interrupt(client, created["Id"], wait=INTERRUPT_GRACE)
            raise
        interrupt.check()  # its runner was interrupted: no result to read
        killed = _killed(container, status)
        out = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace")
        if console_copy is not None:
            _copy_out(container, CONSOLE_IN_CONTAINER, console_copy)
    if killed and len(relay.results) < len(scenario.steps):
        elapsed = time.monotonic() - started
        return _lost_run(scenario, relay, killed, kernel.release, device_reason, elapsed)
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


def _killed(container: Container, status: int) -> str:
    """How the container was killed (`docker kill`, the OOM killer), or "" if its
    runner exited by itself."""
    import docker.errors

    oom = False
    with contextlib.suppress(docker.errors.APIError):
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
    if oom:
        return f"killed by the out-of-memory killer (exit status {status})"
    if status > 128:  # 128 + the signal that ended its first process, as a shell says
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = f"signal {status - 128}"
        return f"killed ({name}, exit status {status})"
    return ""


def _lost_run(
    scenario: Scenario, relay: Relay, killed: str, release: str, accel_reason: str, took: float
) -> ScenarioResult:
    """The run of a killed container as far as its events tell: the steps that finished,
    the one under way lost with the guest, the rest not run; as the local backend
    reports a guest lost mid-step, so that the judge names the step and its file:line."""
    index = next(i for i in range(len(scenario.steps)) if i not in relay.results)
    step = scenario.steps[index]
    error = f"{step.source}: the sandbox container was {killed}; the guest in it is gone"
    steps = [relay.results[i] for i in range(index)]
    for i, s in enumerate(scenario.steps[index:], index):
        status, output = (Status.LOST, "") if i == index else (Status.NOT_RUN, error)
        steps.append(StepResult(i, status, "", s.input, output, None, 0.0, s.where))
        if relay.progress is not None:  # the display's row ends as after a local run
            relay.progress(i, len(scenario.steps), s, steps[-1])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    prov = Provenance(release, "", "", accel_reason, "", now, 0.0, round(took, 2))
    return ScenarioResult(scenario.name, prov, steps, error)


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

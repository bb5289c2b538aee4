"""The docker backend: the same scenario run, inside a fresh container.

The image (runner/Dockerfile) holds QEMU, the build tools, the guest kernels'
headers and the guest artifacts, built in advance. Each run starts a fresh
container from it, copies the kmod/ tree in, feeds the scenario to
`python3 -m runner - --json --events` on stdin, relays the progress events it
writes on stderr and reads the result from stdout; the container is removed
however the run ends.

The image is labelled with a hash of everything it is built from; a missing or
outdated image is rebuilt before the run, with progress.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import base_image, config, guest_image, host_packages, sources, vm
from runner.execute import KMOD
from runner.scenario import Scenario, ScenarioResult, StepResult

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from runner.execute import Progress

HERE = Path(__file__).resolve().parent
IMAGE = "kblog/runner"
TAG = f"{IMAGE}:latest"
INPUTS_LABEL = "org.kblog.inputs"
RUN_LABEL = "org.kblog.run"
OWNER_LABEL = "org.kblog.owner"  # host:pid of the runner that started the container
WORKDIR = "/opt/kblog"  # the image's runner lives in WORKDIR/runner
KMOD_IN_CONTAINER = f"{WORKDIR}/kmod"  # a volume of the container: its root is read-only
CONTAINER_USER = "1000:1000"  # kblog, made by the Dockerfile
SECCOMP = HERE / "container-seccomp.json"
UNMASKED_PROC: dict[str, list[str]] = {"MaskedPaths": [], "ReadonlyPaths": []}
CONSOLE_IN_CONTAINER = "/tmp/console.log"
CONNECT_TIMEOUT = 10
PASSED_ENV = ("KBLOG_ACCEL", "KBLOG_SNAPSHOTS")  # the runner's own switches, if set here
# Host-side only: never run in the container, so editing them rebuilds nothing.
HOST_ONLY = (
    "docker_backend.py",
    "base_image.py",
    # the image takes its packages as a build arg, so only that list counts
    "host-packages.txt",
    "host_packages.py",
    "install-host-packages.sh",
    "container-seccomp.json",  # given to each container, not built in
)

Log = Callable[[str], None]


class DockerBackendError(RuntimeError):
    """The docker backend cannot run, or the run in the container failed."""


class DockerUnavailable(DockerBackendError):
    """No engine answers (or we may not talk to it); the message is one line."""


# --- the engine ---------------------------------------------------------------


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _explain(exc: BaseException) -> str:
    """One line saying why the engine cannot be used, and what to do about it."""
    chain: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    text = " ".join(chain)
    where = _where()
    if "PermissionError" in text or "Permission denied" in text:
        return (
            f"permission denied on the Docker socket ({where}): add your user to the "
            "docker group and log in again, or run as root"
        )
    if any(s in text for s in ("FileNotFoundError", "No such file", "Connection refused")):
        return (
            f"no Docker engine answers at {where}: start it (`sudo dockerd &` or "
            "`sudo systemctl start docker`) or set DOCKER_HOST"
        )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the Docker engine at {where} cannot be used: {first[:200]}"


def connect() -> docker.DockerClient:
    """A client whose engine has answered a ping; DockerUnavailable otherwise."""
    try:
        import docker
    except ImportError:
        raise DockerUnavailable(
            "the docker Python package is missing: pip install -e . in the venv"
        ) from None
    try:
        client = docker.from_env(timeout=CONNECT_TIMEOUT)
        client.ping()
    except Exception as exc:  # the SDK wraps socket errors in several ways
        raise DockerUnavailable(_explain(exc)) from exc
    return client


def docker_available() -> tuple[bool, str]:
    """(True, what answers) or (False, one line saying why not and what to do)."""
    try:
        client = connect()
    except DockerUnavailable as exc:
        return False, str(exc)
    try:
        version = client.version().get("Version", "?")
    finally:
        client.close()
    return True, f"Docker engine {version} answers at {_where()}"


# --- the image ----------------------------------------------------------------


def _build_args(base: str) -> dict[str, str]:
    return {
        "BASE": base,
        "GUEST_PACKAGES": " ".join(config.GUEST_PACKAGES),
        "KERNEL_RELEASES": " ".join(k.release for k in config.KERNELS.values()),
        "RUNNER_PACKAGES": " ".join(host_packages.packages("runner")),
    }


def _context_files() -> list[Path]:
    """What the build context holds: runner/, less caches and the host-only modules."""
    return [p for p in sources.files(HERE) if str(p.relative_to(HERE)) not in HOST_ONLY]


def inputs_digest(base_id: str) -> str:
    """A hash of what the image is built from: the base, the context (Dockerfile too), args."""
    parts: list[bytes | str] = [base_id]
    parts += [f"{k}={v}" for k, v in sorted(_build_args("").items())]
    for path in _context_files():
        parts += [str(path.relative_to(HERE)), path.read_bytes()]
    return guest_image._digest(parts)


def _context() -> io.BytesIO:
    """The build context as a tar: runner/ only (no build caches, no venv)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in _context_files():
            tar.add(path, arcname=str(path.relative_to(HERE)), recursive=False)
    buf.seek(0)
    return buf


def _needs_build(
    client: docker.DockerClient, base: str, force: bool
) -> tuple[str, str | None, str | None]:
    """(the label the image should have, its current id, why it must be built or None)."""
    import docker.errors

    wanted = inputs_digest(client.images.get(base).id)
    try:
        image = client.images.get(TAG)
    except docker.errors.ImageNotFound:
        return wanted, None, "it does not exist yet"
    if force:
        return wanted, image.id, "a rebuild was asked for"
    if image.labels.get(INPUTS_LABEL) != wanted:
        return wanted, image.id, "its inputs changed (base, Dockerfile, runner/, kernels)"
    return wanted, image.id, None


def ensure_image(
    client: docker.DockerClient | None = None,
    log: Log = print,
    force: bool = False,
    verbose: bool = False,
) -> tuple[str, bool]:
    """(the image tag, whether it was built now): builds it if missing or outdated.

    Parallel posts all ask; one thread builds while the others wait and reuse it.
    """
    with _IMAGE_LOCK:
        return _ensure_image(client, log, force, verbose)


_IMAGE_LOCK = threading.Lock()


def _ensure_image(
    client: docker.DockerClient | None, log: Log, force: bool, verbose: bool
) -> tuple[str, bool]:
    import docker.errors

    client = client or connect()
    base = base_image.ensure_base(client, log)
    wanted, old_id, why = _needs_build(client, base, force)
    if why is None:
        return TAG, False
    log(f"docker image {TAG} needs building: {why}; building it on {base} (a few minutes)")
    build_image(client, base, wanted, log, verbose)
    new_id = client.images.get(TAG).id
    if old_id and old_id != new_id:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old_id)  # frees what the new image does not share
    return TAG, True


def build_image(
    client: docker.DockerClient, base: str, digest: str, log: Log = print, verbose: bool = False
) -> None:
    """Build TAG from runner/Dockerfile on `base`, relaying the build's progress."""
    started = time.monotonic()
    tail: list[str] = []
    stream: Iterator[dict[str, Any]] = client.api.build(
        fileobj=_context(),
        custom_context=True,
        dockerfile="Dockerfile",
        tag=TAG,
        buildargs=_build_args(base),
        labels={INPUTS_LABEL: digest},
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            detail = "\n".join(tail[-15:])
            raise DockerBackendError(f"building {TAG} failed: {chunk['error'].strip()}\n{detail}")
        for line in str(chunk.get("stream", "")).splitlines():
            line = line.rstrip()
            if not line.strip():
                continue
            tail = [*tail[-40:], line]
            if verbose or line.startswith(("Step ", "kblog: ")):
                elapsed = time.monotonic() - started
                log(f"  [{elapsed:4.0f} s] {line[:150]}")
    log(f"docker image {TAG} built in {time.monotonic() - started:.0f} s")


# --- a run ----------------------------------------------------------------------


def kvm_devices() -> tuple[list[str], str]:
    """(devices for the container, why): /dev/kvm only where KVM can be used at all.

    The same first checks as vm.choose_accel; inside the container the runner
    still makes its own smoke boot before trusting KVM.
    """
    early = vm.kvm_precheck()
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
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=2g,mode=1777"},
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
        host, _, pid = container.labels.get(OWNER_LABEL, "").partition(":")
        if host == here and pid.isdigit() and not vm.pid_alive(int(pid)):
            _remove(client, container.id)


def _remove(client: docker.DockerClient, container_id: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.api.remove_container(container_id, force=True, v=True)  # and the kmod volume


def run_in_container(
    scenario: Scenario,
    kernel_name: str | None = None,
    *,
    kmod_dir: Path = KMOD,
    log: Log = print,
    progress: Progress | None = None,
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
    error = ""
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
            error = _relay(line, scenario, log, progress) or error
        status = container.wait().get("StatusCode", -1)
        out = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace")
        if console_copy is not None:
            _copy_out(container, CONSOLE_IN_CONTAINER, console_copy)
    if status not in (0, 1):
        why = error or f"the runner in the container exited with status {status}"
        raise DockerBackendError(why)
    try:
        result = ScenarioResult.from_json(json.loads(out))
    except (ValueError, KeyError, TypeError) as exc:
        raise DockerBackendError(f"unreadable result from the container: {exc}") from None
    prov = result.provenance
    if not devices:  # the container's own reason ("no usable /dev/kvm") says less
        prov.accel_reason = f"{device_reason}, so the container got no /dev/kvm"
    return result


def _relay(line: str, scenario: Scenario, log: Log, progress: Progress | None) -> str:
    """Hand one stderr line of the container's runner on; returns an error it reports."""
    try:
        event = json.loads(line)
        kind = event["event"]
    except (ValueError, KeyError, TypeError):
        if line.strip():
            log(line)  # not an event: a traceback, a warning
        return ""
    if kind == "log":
        log(str(event.get("message", "")))
    elif kind == "step" and progress is not None:
        index = int(event["index"])
        result = event.get("result")
        progress(
            index,
            int(event["total"]),
            scenario.steps[index],
            StepResult.from_json(result) if result is not None else None,
        )
    elif kind == "error":
        return str(event.get("message", ""))
    return ""


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

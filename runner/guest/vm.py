"""One QEMU guest: started, handed to the caller, and always torn down.

QEMU's argv is data with a reason per flag. Two channels leave the guest: the
serial console (the kernel log, written by QEMU to a file the host reads) and a
virtio-serial port to the guest agent (commands and terminal output). Files go in
on a third: the transfer disk, a sparse file of the run dir the host writes a
put's bytes into and the agent reads from its device.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from runner import config, interrupt
from runner.guest.agent.agent import PORT_NAME, TRANSFER_SERIAL
from runner.guest.agent_client import AgentClient, AgentLost
from runner.guest.image import GuestArtifacts
from runner.host import Accel, kvm_precheck, pid_alive

GDB_SOCKET = "gdb.sock"  # in the VM's run dir
TRANSFER_DISK = "transfer.img"  # in the VM's run dir
BOOT_TIMEOUT = {"kvm": 30.0, "tcg": 120.0}
KVM_SMOKE_TIMEOUT = 20.0
EXIT_GRACE = 3.0  # how long a guest that closed the agent channel may take to exit
RESTORE_TIMEOUT = 15.0  # a restored guest answers in well under a second


class VMError(RuntimeError):
    """The guest could not be started or used."""


class BootError(VMError):
    """The guest never reached its agent; carries the last console lines."""

    def __init__(self, message: str, qemu_exited: bool = False) -> None:
        super().__init__(message)
        self.qemu_exited = qemu_exited


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise VMError("qemu-system-x86_64 not found: install Debian's qemu-system-x86")
    return path


@functools.cache
def qemu_version() -> str:
    out = subprocess.run([qemu_binary(), "--version"], capture_output=True, text=True, check=True)
    m = re.search(r"version (\S+)", out.stdout)
    return m.group(1) if m else out.stdout.split("\n")[0]


KERNEL_CMDLINE = (
    "console=ttyS0,115200",  # the kernel log goes out on the serial port
    "ignore_loglevel",  # every message reaches the console, as dmesg shows them
    "printk.time=1",  # timestamps, as in dmesg
    "panic=-1",  # reboot at once on panic; with -no-reboot QEMU then exits
    "rdinit=/init",  # our busybox init in the initramfs
    "mitigations=off",  # speculative-execution mitigations only slow TCG down
    "random.trust_cpu=on",  # no wait for entropy on a fresh VM
)


def qemu_argv(
    art: GuestArtifacts, accel: Accel, rundir: Path, memory_mb: int, incoming: int | None = None
) -> list[str]:
    """QEMU's command line; `incoming`, a descriptor of a saved state that QEMU
    inherits, restores that state instead of booting."""
    argv = [qemu_binary()]
    argv += ["-nodefaults", "-no-user-config"]  # only the devices listed here
    argv += ["-display", "none"]  # headless
    argv += ["-no-reboot"]  # a guest reboot (panic=-1) ends QEMU: the host sees it
    argv += ["-machine", "q35"]
    if accel.name == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host", "-smp", "2"]
    else:
        # One vCPU: the host has two cores, one of them for the runner.
        argv += ["-accel", "tcg", "-cpu", "max", "-smp", "1"]
    argv += ["-m", str(memory_mb)]
    argv += ["-kernel", str(art.vmlinuz), "-initrd", str(art.initrd)]
    argv += ["-append", " ".join(KERNEL_CMDLINE)]
    # The root disk is shared by every VM: read-only here, a tmpfs overlay in the guest.
    # Both disks are explicit devices, so they take PCI slots in this order and the
    # guest names the root vda, as its init expects (an if=virtio drive would come
    # after every -device).
    argv += ["-drive", f"file={_opt(art.root_image)},format=raw,if=none,id=root,readonly=on"]
    argv += ["-device", "virtio-blk-pci,drive=root"]
    # The transfer disk (agent_client.put): through the serial port, a page per read,
    # a 45 MB file took about 3 s to arrive under TCG. Read-only for the guest; the
    # host writes the file, and the agent reads the device past its page cache.
    transfer = _opt(rundir / TRANSFER_DISK)
    argv += ["-drive", f"file={transfer},format=raw,if=none,id=transfer,readonly=on"]
    argv += ["-device", f"virtio-blk-pci,drive=transfer,serial={TRANSFER_SERIAL}"]
    # The serial console, appended to a file the host reads as the kernel log.
    argv += ["-chardev", f"file,id=console,path={_opt(rundir / 'console.log')}"]
    argv += ["-serial", "chardev:console"]
    # The agent channel: a named virtio-serial port behind a unix socket.
    argv += ["-device", "virtio-serial-pci,id=vser"]
    argv += ["-chardev", f"socket,id=agent,path={_opt(rundir / 'agent.sock')},server=on,wait=off"]
    argv += ["-device", f"virtserialport,bus=vser.0,chardev=agent,name={PORT_NAME}"]
    # QMP: runner/guest/snapshot.py migrates a booted guest's state through it, and
    # runner/debugger.py resumes a guest that a gdb gone wrong left stopped.
    argv += ["-qmp", f"unix:{_opt(rundir / 'qmp.sock')},server=on,wait=off"]
    # QEMU's gdbstub on a unix socket of this run only (no port on the host): a
    # `.gdb` session attaches to it (runner/debugger.py). Unused, it costs nothing.
    # wait=off: the guest runs without waiting for a debugger.
    argv += ["-chardev", f"socket,id=gdb0,path={_opt(rundir / GDB_SOCKET)},server=on,wait=off"]
    argv += ["-gdb", "chardev:gdb0"]  # the stub speaks on that chardev
    if incoming is not None:
        # Resume a saved guest instead of booting; the devices above must match its own.
        # Read from the file itself: through `exec:cat` and a pipe it took 0.1 s longer.
        argv += ["-incoming", f"fd:{incoming}"]
    return argv


def _opt(path: Path) -> str:
    """A path as a QEMU option value: a comma would end the value, so it is doubled."""
    return str(path).replace(",", ",,")


# QEMU gets SIGKILL when the thread that started it goes away, however the runner
# dies. setpriv sets that up before exec, so no Python runs in the forked child
# (preexec_fn is unsafe while other threads run, as in a parallel build).
DIE_WITH_PARENT_ARGV = ["setpriv", "--pdeathsig", "KILL", "--"]


def runtime_dir() -> Path:
    """Run and build dirs: short paths (unix sockets allow 107 bytes), swept by pid."""
    path = Path(tempfile.gettempdir()) / f"kblog-run-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def sweep_stale_rundirs() -> None:
    """Remove run dirs of runners that were killed before they could clean up."""
    for d in [*runtime_dir().glob("vm-*"), *runtime_dir().glob("build-*")]:
        pid = d.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):  # not ours unless named by a pid
            shutil.rmtree(d, ignore_errors=True)


class Console:
    """The serial console log, read incrementally by byte offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, start: int = 0) -> str:
        try:
            with self.path.open("rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return ""
        return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "")

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.read().splitlines()[-lines:])


class VM:
    """A context manager: boots the guest, yields a connected agent, always cleans up."""

    def __init__(
        self,
        artifacts: GuestArtifacts,
        accel: Accel,
        boot_timeout: float | None = None,
        restore: Path | None = None,
    ):
        self.artifacts = artifacts
        self.accel = accel
        self.restore = restore
        self.boot_timeout = boot_timeout or (
            RESTORE_TIMEOUT if restore else BOOT_TIMEOUT[accel.name]
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.agent: AgentClient | None = None
        self.boot_seconds = 0.0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> VM:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        sweep_stale_rundirs()
        self.rundir = Path(tempfile.mkdtemp(prefix=f"vm-{os.getpid()}-", dir=runtime_dir()))
        self._stack.callback(shutil.rmtree, self.rundir, ignore_errors=True)
        self.console = Console(self.rundir / "console.log")
        state = None
        if self.restore is not None:
            try:
                state = os.open(self.restore, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:  # removed since it was chosen: the caller boots cold
                why = f"the saved guest {self.restore}: {exc.strerror}"
                raise BootError(why, qemu_exited=True) from None
            self._stack.callback(os.close, state)  # QEMU holds its own copy
        # Sparse: it takes host disk only as far as a put writes into it.
        transfer = self.rundir / TRANSFER_DISK
        with transfer.open("wb") as disk:
            disk.truncate(config.TRANSFER_DISK_MB << 20)
        argv = qemu_argv(self.artifacts, self.accel, self.rundir, config.GUEST_MEMORY_MB, state)
        stderr = (self.rundir / "qemu.stderr").open("wb")
        self._stack.callback(stderr.close)
        # An interrupt in another thread kills this QEMU; none starts once it came.
        self._stack.enter_context(interrupt.stops(self._signal_kill))
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [*DIE_WITH_PARENT_ARGV, *argv],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            pass_fds=() if state is None else (state,),
            # Its own session: the terminal's Ctrl-C goes to the runner alone, which
            # tears QEMU down itself. QEMU would exit on that SIGINT at once, and the
            # run would report a lost guest before it heard of the interrupt.
            start_new_session=True,
        )
        self._stack.callback(self._kill)
        interrupt.check()  # an interrupt that came while QEMU started missed it
        deadline = started + self.boot_timeout
        try:
            self.agent = AgentClient.connect(
                self.rundir / "agent.sock", transfer, deadline, self.alive
            )
            self._stack.callback(self.agent.close)
            self.agent.handshake(deadline, self.alive)
        except AgentLost as exc:
            raise self._boot_failure(str(exc), early=time.monotonic() < deadline) from None
        self.boot_seconds = time.monotonic() - started

    def _boot_failure(self, why: str, early: bool) -> BootError:
        if early and self.proc is not None:
            # A guest that panics or powers off closes the agent channel a moment
            # before QEMU exits: wait for that exit, so the message names it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=EXIT_GRACE)
        if not self.alive():
            why = f"QEMU exited with status {self.proc.returncode if self.proc else '?'}"
            qemu_err = (self.rundir / "qemu.stderr").read_text(errors="replace").strip()
            if qemu_err:
                why += f": {qemu_err}"
        elif early:
            why = f"the guest agent's channel failed while QEMU runs ({why})"
        else:
            why = f"no answer from the guest agent within {self.boot_timeout:.0f} s ({why})"
        tail = self.console.tail() or "(the console printed nothing)"
        verb = "resume from its snapshot" if self.restore else "boot"
        return BootError(
            f"guest did not {verb} ({self.accel.name}): {why}\nlast console lines:\n{tail}",
            qemu_exited=not self.alive(),
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal_kill(self) -> None:
        """SIGKILL without waiting for it: called from another thread (an interrupt)."""
        if self.proc is not None:
            self.proc.kill()

    def _kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()  # the guest's state is thrown away: nothing to shut down cleanly
        self.proc.wait(timeout=10)


# --- choosing an accelerator ---------------------------------------------------------


def choose_accel(artifacts: GuestArtifacts, log=print) -> Accel:
    """KVM where a short smoke boot under KVM works, else TCG; the answer is cached.

    The existence of /dev/kvm proves nothing: some hypervisors expose a /dev/kvm that
    accepts KVM_CREATE_VM but never boots a stock kernel.
    """
    early = kvm_precheck()
    if early is not None:
        return early
    cache = config.cache_dir() / "accel.json"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    key = f"{boot_id}:{artifacts.identity}"
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return Accel(saved["name"], saved["reason"])
    log("checking whether KVM can boot the guest kernel (a smoke boot)")
    try:
        with VM(artifacts, Accel("kvm", "smoke"), boot_timeout=KVM_SMOKE_TIMEOUT) as vm:
            accel = Accel("kvm", f"a KVM smoke boot reached the agent in {vm.boot_seconds:.1f} s")
    except VMError as exc:
        first = str(exc).splitlines()[0]
        accel = Accel("tcg", f"a KVM smoke boot failed ({first})")
    with contextlib.suppress(OSError):  # a read-only cache (the container's) only costs time
        cache.write_text(json.dumps({"key": key, "name": accel.name, "reason": accel.reason}))
    return accel

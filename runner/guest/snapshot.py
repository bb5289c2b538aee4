"""A booted guest saved once, restored for every scenario.

A cold boot costs 6 to 27 s under TCG. The guest is booted once per (kernel,
initramfs, root image with agent, QEMU, accelerator), its state migrated into a
file once the agent answers and a pool of idle terminals has its prompts
(runner/guest/sessions.py), and every scenario's VM starts from that file
(`-incoming`). The root disk is read-only and the guest writes only to a tmpfs,
so each restored VM is as fresh as a booted one, and several can run at once.

The state file is written under a temporary name and renamed by its writer once
the last byte is in: a partial file is never used. One that QEMU refuses to
restore is deleted, that VM boots cold, and the next run saves a new one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import shlex
import time
from pathlib import Path

from runner import config
from runner.events import Log
from runner.guest import sessions as guest_session
from runner.guest.image import GuestArtifacts
from runner.guest.qmp import QMP, QMPError
from runner.guest.vm import VM, VMError, qemu_version
from runner.host import Accel, pid_alive

SNAPSHOTS = "snapshots"  # the directory of the saved guests, in GuestArtifacts.cache
MIGRATE_TIMEOUT = 120.0
POOL_TIMEOUT = 60.0  # a cold guest's bash and python3 show prompts in a few seconds


class SnapshotError(VMError):
    """The guest's state could not be saved."""


def disk_stamp(root_image: Path) -> str:
    """The root disk file's size and date. A saved guest has that disk mounted, so a
    disk made again under the same name is another guest: each build of the Docker
    image makes its own, while the saved guests of built kernels outlive it (in the
    kblog-kernel-build volume). Its name alone follows what it is made from."""
    st = root_image.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def state_path(artifacts: GuestArtifacts, accel: Accel) -> Path:
    disk = disk_stamp(artifacts.root_image)
    pool = [guest_session.program(kind).fields() for kind in guest_session.POOL]
    key = hashlib.sha256(
        json.dumps(
            [artifacts.identity, disk, qemu_version(), accel.name, config.GUEST_MEMORY_MB, pool]
        ).encode()
    ).hexdigest()[:16]
    return artifacts.cache / SNAPSHOTS / f"{_name_prefix(artifacts, accel)}{key}.state"


def _name_prefix(artifacts: GuestArtifacts, accel: Accel) -> str:
    """What a state's name starts with: its kernel's release, the workspace that built
    it (for a built kernel), the accelerator. A newer state of the same prefix
    supersedes it; two posts' kernels of one release have a prefix each."""
    lineage = f"{artifacts.lineage}-" if artifacts.lineage else ""
    return f"{artifacts.kernel.release}-{lineage}{accel.name}-"


def ensure(artifacts: GuestArtifacts, accel: Accel, log: Log = print) -> Path:
    """The state file for these artifacts, booting and saving a guest if needed."""
    path = state_path(artifacts, accel)
    if path.exists():
        return path  # renamed into place only once complete
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK):
        # The container's cache is read-only: it carries TCG states; KVM boots cold.
        raise SnapshotError(f"no {accel.name} snapshot in the read-only cache {path.parent}")
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait and reuse it
        if path.exists():
            return path
        _sweep_partial(path.parent)
        log(f"booting {artifacts.kernel.release} once to save a snapshot ({accel.name})")
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        try:
            _save(artifacts, accel, tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        drop_superseded(artifacts, accel)
    return path


def drop_superseded(artifacts: GuestArtifacts, accel: Accel) -> None:
    """Older states of the same kernel, workspace and accelerator (100 MB each) are
    never used again: their key named an agent, image or QEMU that has changed since."""
    current = state_path(artifacts, accel)
    prefixes = [_name_prefix(artifacts, accel)]
    if artifacts.lineage:  # and one saved before built kernels had a lineage each
        prefixes.append(_name_prefix(dataclasses.replace(artifacts, lineage=""), accel))
    for prefix in prefixes:
        for old in current.parent.glob(f"{glob.escape(prefix)}*.state"):
            if old != current and old.name[len(prefix) :].count("-") == 0:
                _remove(old)


def drop_lineage(cache: Path, lineage: str) -> None:
    """Remove the saved guests of the kernels a workspace built, once it is gone."""
    mark = f"-{lineage}-"
    for old in (cache / SNAPSHOTS).glob(f"*{glob.escape(mark)}*.state"):
        # Only the accelerator and the key follow the mark: a workspace whose key
        # merely starts with this one's ("ep3" and "ep3-system-call") keeps its own.
        if old.name.rsplit(mark, 1)[1].count("-") == 1:
            _remove(old)


def _remove(state: Path) -> None:
    # A VM restoring from it keeps its open file. One that cannot be removed (another
    # user's) stays: nothing needs it gone, and no run may fail for it.
    with contextlib.suppress(OSError):
        state.unlink(missing_ok=True)
        state.with_suffix(".lock").unlink(missing_ok=True)


def _save(artifacts: GuestArtifacts, accel: Accel, tmp: Path, final: Path) -> None:
    with VM(artifacts, accel) as vm:
        started = time.monotonic()
        assert vm.agent is not None
        try:
            guest_session.start_pool(vm.agent, started + POOL_TIMEOUT, vm.alive)
        except guest_session.PoolError as exc:
            raise SnapshotError(f"the guest's pooled terminals: {exc}") from exc
        qmp = QMP(vm.rundir / "qmp.sock")
        try:
            # The writer renames the file itself once it has written the last byte:
            # QEMU reports "completed" when the stream has left it, maybe not the pipe.
            src, dst = shlex.quote(str(tmp)), shlex.quote(str(final))
            qmp.command("migrate", uri=f"exec:cat > {src} && mv {src} {dst}")
            while not final.exists():
                status = qmp.command("query-migrate").get("status")
                if status in ("failed", "cancelled"):
                    raise SnapshotError(_failed(tmp, status))
                if time.monotonic() - started > MIGRATE_TIMEOUT:
                    raise SnapshotError(_failed(tmp, "timed out"))
                time.sleep(0.05)
        except (QMPError, OSError, ValueError) as exc:
            raise SnapshotError(f"{_failed(tmp, 'failed')}: {exc}") from exc
        finally:
            qmp.close()


def _failed(tmp: Path, how: str) -> str:
    """Why a save stopped, naming the file; QEMU says only "failed" when the writer
    died, so a full disk (the usual cause) is told by the space left beside it."""
    said = f"saving the guest's state into {tmp} {how}"
    try:
        st = os.statvfs(tmp.parent)
    except OSError:
        return said
    free_mb = st.f_bavail * st.f_frsize / (1 << 20)
    if free_mb < config.GUEST_MEMORY_MB:  # a state holds up to the guest's memory
        return f"{said}: no space left on the device of {tmp.parent} ({free_mb:.0f} MB free)"
    return said


def _sweep_partial(directory: Path) -> None:
    """Remove half-written state files of runners that died while saving."""
    for tmp in directory.glob(".tmp-*"):
        if not pid_alive(int(tmp.name.split("-")[1])):
            tmp.unlink(missing_ok=True)


def discard(path: Path) -> None:
    """Forget a state file that failed to restore."""
    with contextlib.suppress(OSError):  # gone already, or in a read-only cache
        path.unlink()

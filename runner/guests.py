"""Which guest a step runs on: the stock kernel's, restored from its snapshot where
one works (else booted cold), or the kernel the post's build steps made in a kernel
workspace, checked before it boots (runner/kernels/build.py)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from runner import config
from runner.events import Log
from runner.guest import image as guest_image
from runner.guest import snapshot
from runner.guest.vm import VM, BootError, VMError
from runner.host import Accel
from runner.kernels import build as kernel_build
from runner.kernels import source as kernel_source
from runner.scenario import Step


class BuiltKernelError(RuntimeError):
    """The kernel a post's build steps made cannot boot; names the step that asked."""


@dataclass
class GuestKernels:
    """Starts the guests of a run: on the stock kernel, or on the one its build steps
    made in a kernel workspace (runner/kernels/build.py), checked before it boots."""

    stock: guest_image.GuestArtifacts
    accel: Accel
    log: Log
    snapshots: bool | None  # None: as KBLOG_SNAPSHOTS says
    workspace: KernelWorkspace | None  # claimed by a scenario with boot=built

    def start(self, step: Step, stack: contextlib.ExitStack) -> VM:
        if step.boot == "stock":
            return fresh_vm(stack, self.stock, self.accel, self.log, self.snapshots)
        assert self.workspace is not None  # a scenario with boot=built claims one
        try:
            artifacts = self.workspace.artifacts(self.log)
        except kernel_build.KernelBuildError as exc:
            raise BuiltKernelError(f"{step.source}: boot=built: {exc}") from None
        try:
            return fresh_vm(stack, artifacts, self.accel, self.log, self.snapshots)
        except BootError as exc:
            raise BuiltKernelError(
                f"{step.source}: boot=built: the kernel the build steps made did not boot: {exc}"
            ) from None


@dataclass
class KernelWorkspace:
    """A kernel tree and its kept objects, claimed for one run (runner/kernels/build.py)."""

    source: kernel_source.KernelSource
    workspace: kernel_build.Workspace
    fragment: str

    series: str  # the label of the kernel whose source it builds
    built: kernel_build.BuiltKernel | None = None  # the last kernel a step booted
    reconciled: bool = False  # the objects settled before a make (before_build_step)
    seeded: bytes | None = None  # the .config a seed brought, until the next make
    log: Log = print

    @classmethod
    def claim(
        cls,
        stack: contextlib.ExitStack,
        kernel: config.Kernel,
        post: str,
        fragment: str,
        log: Log,
    ) -> KernelWorkspace:
        """The workspace of `post` for `kernel`'s source, claimed for the run: its own,
        so that another post's objects are never rebuilt or refused by this one."""
        source = kernel_source.fetch(kernel, log)
        chosen = kernel_build.workspace(kernel.name, source.version, fragment, post)
        ws = stack.enter_context(kernel_build.claimed(chosen, log, drop_saved_guests))
        kernel_build.checkout(source.tree, ws, as_root=os.geteuid() == 0)
        return cls(source, ws, fragment, kernel.name, log=log)

    def before_build_step(self, typed: str) -> None:
        """Settle the objects before the run's first command that makes some (see
        kernel_build.settle): by then the post has patched what it patches. Before
        the next one, a seed of another configuration is replaced (kernel_build.reseed)."""
        if not kernel_build.MAKES_OBJECTS.search(typed):
            return
        if not self.reconciled:
            self.reconciled = True
            self.seeded = kernel_build.settle(self.workspace, self.source.tree, self.log)
        elif self.seeded is not None:  # the first make was the post's configuration step
            seeded, self.seeded = self.seeded, None
            kernel_build.reseed(self.workspace, self.source.tree, seeded, self.log)

    def rejects(self) -> str:
        """The hunks `patch` could not apply, from the .rej files it left in the tree."""
        changed = kernel_build.differing(self.source.tree, self.workspace.tree)
        found = [rel for rel in sorted(changed) if rel.endswith(".rej")]
        return "".join(
            f"~/{kernel_build.INSIDE_SOURCE}/{rel}:\n{(self.workspace.tree / rel).read_text()}"
            for rel in found
        )

    def artifacts(self, log: Log) -> guest_image.GuestArtifacts:
        built = kernel_build.accept(
            self.workspace, self.source.tree, self.series, self.source.version, self.fragment
        )
        self.built = built
        return kernel_build.guest_artifacts(built, log)

    def provenance(self, posts_tree: Path) -> dict[str, str]:
        """What the page says of the kernel the run booted ({} if it booted none)."""
        if self.built is None:
            return {}
        return kernel_build.provenance(
            self.built, self.source.package, self.workspace.tree, self.fragment, posts_tree
        )


def drop_saved_guests(workspace: Path) -> None:
    """Remove the saved guests of the kernels a pruned workspace built (its key names them)."""
    snapshot.drop_lineage(config.kernel_cache_dir(), workspace.name)


def fresh_vm(
    stack: contextlib.ExitStack, artifacts, accel: Accel, log: Log, snapshots: bool | None
) -> VM:
    """A VM from the saved snapshot where there is one that works, else a cold boot."""
    if snapshots is None:
        snapshots = os.environ.get("KBLOG_SNAPSHOTS", "1") != "0"
    if snapshots:
        try:
            state = snapshot.ensure(artifacts, accel, log)
        except VMError as exc:
            log(f"no snapshot could be saved, booting cold: {str(exc).splitlines()[0]}")
            return stack.enter_context(VM(artifacts, accel))
        try:
            return stack.enter_context(VM(artifacts, accel, restore=state))
        except BootError as exc:
            log(f"the snapshot did not restore, booting cold: {str(exc).splitlines()[0]}")
            if exc.qemu_exited:  # QEMU refused the file; a slow restore proves nothing
                snapshot.discard(state)
    return stack.enter_context(VM(artifacts, accel))

"""Facts about this host that need no VM: whether KVM can be tried, whether a pid lives.

Host-only code (the Docker backend, the CLI) asks these without importing the VM
machinery; runner/guest/vm.py builds on them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str  # why this one was chosen, for the reader and the logs


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def kvm_precheck() -> Accel | None:
    """The accelerator when it is decided without a smoke boot, else None (KVM may work)."""
    forced = os.environ.get("KBLOG_ACCEL")
    if forced in ("kvm", "tcg"):
        return Accel(forced, "set by KBLOG_ACCEL")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "no usable /dev/kvm")
    if not _cpu_has_virt():
        return Accel("tcg", "/dev/kvm exists but the CPU shows no vmx/svm flag")
    return None


def _cpu_has_virt() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M))

"""Every program the project starts comes from a package that its own files install.

The programs are found in the sources (argv lists passed to subprocess and
friends, names given to shutil.which, module-level *_ARGV lists) plus the tools
the module and kernel builds call, which no Python source names. Each is resolved
on this machine and mapped to its Debian package with `dpkg -S`; that package
must be in runner/host-packages.txt, in Debian's essential set, or a dependency
of one of those. A new `subprocess.run(["newtool", ...])` without its package in
the list fails here, on any machine that has already installed the tool by hand.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import host_packages

ROOT = Path(__file__).resolve().parent.parent
# Host-side code; runner/agent/ runs in the guest, whose packages config.py names.
SCANNED = [ROOT / "runner", ROOT / "plugins", ROOT / "tasks.py", ROOT / "bench", ROOT / "tests"]
GUEST_SIDE = ROOT / "runner" / "agent"
# Calls whose first argument is an argv (or, for which, a program name).
SPAWNERS = {"run", "Popen", "check_output", "check_call", "call", "_run", "_apt", "which"}
ARGV_NAME = re.compile(r"(ARGV|argv)$")

# Programs that no Python source names: kbuild and the module Makefiles call them.
BUILD_TOOLS = {
    "make": "the post's build steps",
    "gcc-12": "kbuild of Debian 12's kernels (.kernelvariables names it)",
    "ld": "kbuild links modules",
    "pahole": "BTF for modules of 6.12 (kmod/*/Makefile)",
    "bash": "the build steps' shell",
    "uname": "KDIR in kmod/*/Makefile",
    "bc": "kbuild of a guest kernel from source (runner/kernel_build.py)",
    "bison": "kbuild of a guest kernel from source (runner/kernel_build.py)",
    "flex": "kbuild of a guest kernel from source (runner/kernel_build.py)",
    "xz": "tar -xJ of linux-source's tarball (runner/kernel_source.py)",
}


def _python_files() -> Iterator[Path]:
    for base in SCANNED:
        paths = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in paths:
            if GUEST_SIDE not in path.parents:
                yield path


def _first_word(node: ast.AST) -> str | None:
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        node = node.elts[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split("/")[-1] if node.value.startswith("/") else node.value
    return None


def programs_in(tree: ast.AST) -> set[str]:
    """The programs one module starts, as far as its source names them."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SPAWNERS and (word := _first_word(node.args[0])):
                found.add(word)
        elif isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(ARGV_NAME.search(n) for n in names) and (word := _first_word(node.value)):
                found.add(word)
    return found


def _all_programs() -> dict[str, str]:
    """{program: where it is started from}."""
    found = dict(BUILD_TOOLS)
    for path in _python_files():
        for program in programs_in(ast.parse(path.read_text(), str(path))):
            found.setdefault(program, str(path.relative_to(ROOT)))
    return found


def _installed() -> dict[str, tuple[bool, list[list[str]], list[str]]]:
    """{package: (essential, dependency groups, provides)} for installed packages."""
    fmt = "${Package}\\t${Status}\\t${Essential}\\t${Pre-Depends}, ${Depends}\\t${Provides}\\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines():
        pkg, status, essential, depends, provides = line.split("\t")
        if not status.endswith(" installed"):
            continue
        groups = [
            [alt.split()[0].split(":")[0] for alt in group.split("|") if alt.strip()]
            for group in depends.split(",")
            if group.strip()
        ]
        table[pkg] = (essential == "yes", groups, [p.split()[0] for p in provides.split(",") if p])
    return table


def _allowed_packages() -> set[str]:
    """The listed and essential packages and everything they depend on."""
    table = _installed()
    providers: dict[str, set[str]] = {}
    for pkg, (_, _, provides) in table.items():
        for virtual in provides:
            providers.setdefault(virtual, set()).add(pkg)
    todo = [*host_packages.read(), *(p for p, (ess, _, _) in table.items() if ess)]
    seen: set[str] = set()
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for group in table.get(pkg, (False, [], []))[1]:
            for alt in group:
                todo += [alt] if alt in table else sorted(providers.get(alt, ()))
    return seen


# Debian's own directories: what a new machine has comes from its packages, and a
# tool installed by hand under /usr/local or ~ must not stand in for one.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _package_of(program: str) -> str:
    path = shutil.which(program, path=SYSTEM_PATH)
    assert path is not None, f"{program} is not installed: which package provides it?"
    real = os.path.realpath(path)
    candidates = [path, real]
    # Merged /usr: dpkg may have recorded /bin/x for what PATH finds as /usr/bin/x.
    for p in (path, real):
        candidates.append(p.removeprefix("/usr") if p.startswith("/usr/") else "/usr" + p)
    for candidate in candidates:
        proc = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.split(":")[0].split(",")[0].strip()
    raise AssertionError(f"{program} ({path}) belongs to no Debian package")


def test_the_scan_finds_the_known_programs() -> None:
    """If the scan stopped seeing argv lists, the test below would pass on nothing."""
    found = _all_programs()
    for program in ("depmod", "cpio", "mkfs.ext4", "qemu-system-x86_64", "setpriv", "bwrap"):
        assert program in found, f"{program} is no longer found in the sources"
    assert len(found) >= 15


def test_scan_sees_a_new_subprocess_call() -> None:
    source = 'import subprocess\nsubprocess.run(["newtool", "--flag"], check=True)\n'
    assert "newtool" in programs_in(ast.parse(source))


@pytest.mark.parametrize("program", sorted(_all_programs()))
def test_program_comes_from_a_listed_package(program: str) -> None:
    package = _package_of(program)
    assert package in _ALLOWED, (
        f"{program} (started by {_all_programs()[program]}) comes from Debian's {package}, "
        f"which runner/host-packages.txt does not name (nor any package it depends on)"
    )


def test_every_listed_package_is_installed() -> None:
    table = _installed()
    missing = [pkg for pkg in host_packages.read() if pkg not in table]
    assert missing == [], f"listed but not installed (run make): {missing}"


def test_the_image_and_bundle_take_the_list() -> None:
    dockerfile = (ROOT / "runner" / "Dockerfile").read_text()
    assert "$RUNNER_PACKAGES" in dockerfile
    for pkg in ("qemu-system-x86", "busybox-static", "kmod"):
        assert not re.search(rf"^\s+.*\b{re.escape(pkg)}\b", dockerfile, re.M), (
            f"the Dockerfile names {pkg} itself; it takes the list as RUNNER_PACKAGES"
        )
    readme = (ROOT / "plugins" / "kblog_snippets" / "bundle-README.txt").read_text()
    assert "runner/install-host-packages.sh runner local" in readme


def test_malformed_list_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "host-packages.txt"
    bad.write_text("# comment\nqemu-system-x86 runner\nkmod sometimes\n")
    with pytest.raises(host_packages.PackageListError, match=r"host-packages.txt:3:"):
        host_packages.read(bad)


_ALLOWED = _allowed_packages()

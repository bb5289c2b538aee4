"""Volatile values are blanked for comparisons; what a reader would call a change is not."""

from __future__ import annotations

from runner.judge.normalize import normalize
from runner.judge.verdict import compare, kernel_renames
from runner.scenario import Provenance, ScenarioResult, Status, StepResult


def step(
    output: list[str], status: str = "ok", where: str = "guest", typed: str = "cat"
) -> StepResult:
    return StepResult(0, Status(status), "$ ", typed, "\n".join(output), 0, 0.1, where)


def ran(kernel: str, package: str) -> ScenarioResult:
    prov = Provenance(kernel, package, "tcg", "test", "7.2", "2026-12-04", 0.2, 1.0)
    return ScenarioResult("post", prov, [])


def test_volatile_values_are_blanked() -> None:
    a = "[   12.191908] PGD 19214067 P4D 19215067 PUD 1eee2067 PMD 135a067 PTE 0"
    b = "[    9.135409] PGD e414067 P4D e415067 PUD e417067 PMD 1cbd1067 PTE 0"
    assert normalize(a) == normalize(b)
    c = "[   11.475463] PGD 9214067 P4D 9214067 PUD 9216067 PMD 1c6d9067 PTE 0"
    assert normalize(c) == normalize(b)  # an entry's hex digits may all be decimal ones
    assert normalize("RIP: 0010:vfs_read+0x8a/0x310") == normalize("RIP: 0010:vfs_read+0x7f/0x300")
    assert normalize("  126 Xs+  [python3]") == normalize("  4711 Xs+  [python3]")
    said = "kblog_hello: hello, world, from kblog_hello (pid {})"
    assert normalize(said.format(40)) == normalize(said.format(41))
    assert normalize("CPU: 0 PID: 38 Comm: python3") == normalize("CPU: 0 PID: 9 Comm: python3")
    # The build sandbox shows the reader's paths, so no path is blanked.
    line = "CC [M]  /home/user/chardev/chardev.o"
    assert normalize(line) == line


def test_what_a_reader_would_notice_still_differs() -> None:
    assert normalize("I already told you 0 times") != normalize("I already told you 1 times")
    assert normalize("  126 Xs+  [python3]") != normalize("  126 D+  [python3]")
    assert normalize("Oops: 0000 [#1]") != normalize("Oops: Oops: 0000 [#1]")


def test_drift_reports_steps_that_differ() -> None:
    assert (
        compare([step(["[ 1.0] x ffffffffc02b41d0"])], [step(["[ 2.0] x ffffffffc072a178"])]) == ""
    )
    report = compare([step(["0 times"], typed="cat /dev/chardev")],
                     [step(["1 times"], status="hang", typed="cat /dev/chardev")])  # fmt: skip
    assert "step 1: $ cat /dev/chardev" in report
    assert "status: ok published, hang now" in report
    assert "-0 times" in report and "+1 times" in report


def test_another_abi_is_not_drift_by_its_name_alone() -> None:
    renames = kernel_renames(ran("6.1.0-56-amd64", "6.1.192-2"), ran("6.1.0-57-amd64", "6.1.192-3"))
    assert renames == {"6.1.0-56-amd64": "6.1.0-57-amd64", "6.1.192-2": "6.1.192-3"}
    old = ["vermagic: 6.1.0-56-amd64 SMP", "Tainted: G OE 6.1.0-56-amd64 #1  Debian 6.1.192-2"]
    new = ["vermagic: 6.1.0-57-amd64 SMP", "Tainted: G OE 6.1.0-57-amd64 #1  Debian 6.1.192-3"]
    assert compare([step(old)], [step(new)], renames) == ""
    assert "vermagic" in compare([step(old)], [step(new)])  # without renames it is drift
    # Only whole names: a longer release that merely starts the same is left alone.
    assert "-N.N.0-56-amd64x" in compare([step(["6.1.0-56-amd64x"])], [step(["y"])], renames)
    assert kernel_renames(ran("a", "b"), ran("a", "b")) == {}


def test_another_source_version_is_not_drift_by_the_built_release_alone() -> None:
    """verify --newest builds the newest linux-source: the built kernel's release and
    the source's version differ by design."""
    was, now = ran("6.12.107+deb12-amd64", "x"), ran("6.12.107+deb12-amd64", "x")
    was.provenance.built = {"release": "6.12.118-kblog", "source_version": "6.12.118-1~deb12u1"}
    now.provenance.built = {"release": "6.12.120-kblog", "source_version": "6.12.120-1~deb12u1"}
    renames = kernel_renames(was, now)
    assert renames == {
        "6.12.118-kblog": "6.12.120-kblog", "6.12.118-1~deb12u1": "6.12.120-1~deb12u1"
    }  # fmt: skip
    assert compare([step(["6.12.118-kblog"])], [step(["6.12.120-kblog"])], renames) == ""


def test_what_make_redid_in_kept_objects_is_not_drift() -> None:
    """An incremental kernel build lists what it rebuilt, which depends on the runs
    before it; its other lines, and the same lines in the guest, still count."""
    ready = "Kernel: arch/x86/boot/bzImage is ready  (#1)"
    rebuilt = ["  CALL    scripts/checksyscalls.sh", "  BUILD   arch/x86/boot/bzImage", ready]
    nothing = ["  CALL    scripts/checksyscalls.sh", ready]
    assert compare([step(rebuilt, where="build")], [step(nothing, where="build")]) == ""
    assert "+make: *** [Makefile:N] Error 2" in compare(
        [step(nothing, where="build")],
        [step([*nothing, "make: *** [Makefile:250] Error 2"], where="build")],
    )
    assert "-  BUILD   arch/x86/boot/bzImage" in compare(
        [step(rebuilt, where="guest")], [step(nothing, where="guest")]
    )


def test_a_fresh_build_dir_and_a_kept_one_are_no_drift() -> None:
    """A reader reproducing a kernel post from nothing gets kconfig's "configuration
    written" where the published run, on a kept ~/build, said "No change"."""
    kept = ["#", "# No change to .config", "#", "make[1]: Leaving directory '/home/user/build'"]
    fresh = ["#", "# configuration written to .config", "#", kept[-1]]
    assert compare([step(kept, where="build")], [step(fresh, where="build")]) == ""
    # In the guest, or anything else changed, it is still a difference.
    assert compare([step(kept)], [step(fresh)]) != ""
    assert compare([step(kept, where="build")], [step(fresh[:-1], where="build")]) != ""


def test_what_the_post_writes_as_varying_is_not_drift() -> None:
    """A PID the post writes as `...` differs from run to run; a state it writes out
    does not, and a step without an expectation is compared as it printed."""
    written = [["1 S kblog-agent", "... R drgn"]]
    published = [step(["1 S kblog-agent", "42 R drgn"])]
    assert compare(published, [step(["1 S kblog-agent", "47 R drgn"])], None, written) == ""
    assert "+47 S drgn" in compare(
        published, [step(["1 S kblog-agent", "47 S drgn"])], None, written
    )
    assert compare(published, [step(["1 S kblog-agent", "47 R drgn"])]) != ""
    # As a terminal gives it: the output ends with a newline.
    ended = [step(["1 S kblog-agent", "42 R drgn", ""])]
    assert compare(ended, [step(["1 S kblog-agent", "43 R drgn", ""])], None, written) == ""

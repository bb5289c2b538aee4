"""bench/measure.py's pure parts: the debug kernel's options as episode 4 makes them,
and the table's kernel rows and targets. The measures themselves run in `invoke bench`."""

from __future__ import annotations

from pathlib import Path

from bench import measure
from runner.kernels import build as kernel_build
from runner.scenario import Provenance, ScenarioResult, Status, StepResult

ROOT = Path(__file__).resolve().parent.parent


def test_debug_fragment_is_what_episode_4_builds_with(tmp_path: Path) -> None:
    # The bench measures the page's kernel: the page must still make its options so.
    page = (ROOT / "content" / "ep4-looking-inside.md").read_text()
    assert "$ cat ~/kernel/guest.config ~/kernel/debug.config > ~/debug.config\n" in page
    assert "KCONFIG_ALLCONFIG=~/debug.config allnoconfig" in page
    made = kernel_build.parse_config(measure.debug_fragment(tmp_path).read_text())
    guest = kernel_build.parse_config(kernel_build.FRAGMENT.read_text())
    debug = kernel_build.parse_config(measure.DEBUG_FRAGMENT.read_text())
    # Every option of both, none lost where the two files meet; the debugger's last.
    assert made == {**guest, **debug}
    assert debug["CONFIG_DEBUG_INFO_DWARF5"] == "y" and debug["CONFIG_GDB_SCRIPTS"] == "y"


def test_table_reports_the_debug_kernel_and_its_targets() -> None:
    results = {
        "kernel": "6.1.0-56-amd64",
        "accel": "tcg",
        "accel_reason": "no vmx",
        "runs": 3,
        "episode2_over_cold_boot": 0.9,
        "warm_over_plain": 1.1,
        "kernel_clean_build": {"median_s": 400.0},
        "debug_kernel_clean_build": {"median_s": 700.0},
        "debug_kernel_rebuild_after_edit": {"median_s": 90.5},
        "episode3_beside_episode4": {"median_s": 10.0},
        "episode4_scenario": {"median_s": 17.0},
        "debug_clean_over_clean": 1.75,
        "episode4_over_episode3": 1.7,
        "episodes_3_4_objects_compiled": 0,
    }
    lines = measure.table(results).splitlines()
    assert any(line.startswith("debug kernel: clean build") and "700.00s" in line for line in lines)
    assert any(line.startswith("debug kernel: rebuild") and "90.50s" in line for line in lines)
    assert any(line.startswith("episode 4 scenario") and "17.00s" in line for line in lines)
    assert any("(target <= 2)" in line and line.endswith("1.75x") for line in lines)
    assert any(line.startswith("episode 4 / episode 3 (target <= 2)") for line in lines)
    assert any(line.endswith("1.70x") for line in lines)
    assert any(line.startswith("objects compiled, eps 3 and 4") for line in lines)


def test_compiled_counts_kbuilds_cc_lines() -> None:
    output = "  CC      kernel/sys.o\r\n  AR      kernel/built-in.a\r\n  CC      init/version.o\r\n"
    steps = [
        StepResult(0, Status.OK, "$ ", "make O=~/build -j2 bzImage", output, 0, 1.0, "build"),
        StepResult(1, Status.OK, "$ ", "cat x.c", "  CC      not/a/build.o\n", 0, 0.1, "build"),
    ]
    provenance = Provenance("6.1.0-56-amd64", "6.1.1", "tcg", "test", "7.2", "now", 1.0, 9.0)
    result = ScenarioResult("ep3-system-call", provenance, steps)
    assert measure.compiled(result) == 2

"""A Python started from a guest shell: the session's next blocks type into it.

As in a terminal a reader opens: `python3` (or `sudo drgn`) at the shell prompt,
then pycon blocks at Python's, then `exit()` and the shell again. The runner knows
which program waits from the prompt it printed, and says so when a block types
into the other one.
"""

from __future__ import annotations

import re

import pytest
from vmhelp import Guest, py, scenario, sh

from runner.execute import run_scenario
from runner.scenario import Status

pytestmark = pytest.mark.vm

QUIET = {"log": lambda msg: None}


def test_a_shell_starts_python_and_gets_its_prompt_back(guest: Guest) -> None:
    result = run_scenario(
        scenario(
            "from-shell",
            sh("t", "echo $$", ["@shell@"]),
            sh("t", "python3 -q", []),
            # The Python is the shell's child: the same terminal, not a new session.
            py("t", "import os; os.getppid()", ["@shell@"]),
            py("t", "for n in range(2):\n    print(n)", ["0", "1"]),
            py("t", "exit()", []),
            sh("t", "echo back in $0", ["back in bash"]),
        ),
        **QUIET,
    )
    assert result.error == ""
    assert [s.status for s in result.steps] == [Status.OK] * 6
    assert [s.matched for s in result.steps] == [True] * 6
    assert [s.prompt for s in result.steps] == ["$ ", "$ ", ">>> ", ">>> ", ">>> ", "$ "]
    # A step that leaves a Python at its prompt has no exit status yet.
    assert result.steps[1].exit_status is None
    assert result.steps[5].exit_status == 0


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [sh("t", "true", []), py("t", "1", ["1"])],
            r"^misuse:2: this pycon block types into session 't', whose terminal shows a "
            r"shell prompt \(\$\): start a Python shell in it first",
        ),
        (
            [py("t", "1", ["1"]), sh("t", "ls", [])],
            r"^misuse:2: this console block types into session 't', whose terminal shows "
            r"Python's prompt \(>>>\): leave that Python first",
        ),
    ],
)
def test_a_block_for_the_other_program_names_its_line(
    guest: Guest, steps: list, message: str
) -> None:
    result = run_scenario(scenario("misuse", *steps), **QUIET)
    assert result.steps[0].status == Status.OK
    assert result.steps[1].status == Status.NOT_RUN
    assert result.error

    assert re.match(message, result.error), result.error

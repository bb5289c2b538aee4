"""PYTHONSTARTUP for guest Python sessions.

The prompts carry an invisible marker (an OSC escape the terminal would ignore) so
the host knows when Python waits for input; the tty's own echo could never forge
it. Readline stays off: the terminal echoes what is typed, as a plain one does.
"""

import sys


class _Prompt:
    def __init__(self, kind: str, text: str) -> None:
        self.marker = f"\x1b]777;kblog;{kind};\x07{text}"

    def __str__(self) -> str:
        return self.marker


sys.ps1 = _Prompt("P", ">>> ")
sys.ps2 = _Prompt("C", "... ")
sys.__interactivehook__ = lambda: None
del sys, _Prompt

"""Marked prompts for every interactive Python of the guest.

A .pth line beside this module imports it when any python3 starts: the plain
Python of a pycon session, and a Python shell a post starts from a terminal
(`python3`, or drgn's shell under `sudo drgn`, which reads no PYTHONSTARTUP and
keeps none of the caller's environment). Each prompt carries an invisible marker
(an OSC escape a terminal ignores) that tells the host the program waits for
input; its status field stays empty, which is how the host tells a Python's
prompt from a shell's. The format is runner/terminal.py's MARKER.
"""

import sys


class _Prompt:
    def __init__(self, kind: str, text: str) -> None:
        self.marker = f"\x1b]777;kblog;{kind};\x07{text}"

    def __str__(self) -> str:
        return self.marker


sys.ps1 = _Prompt("P", ">>> ")
sys.ps2 = _Prompt("C", "... ")

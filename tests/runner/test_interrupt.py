"""Ctrl-C reaches every run, even when Python drops the KeyboardInterrupt it raised."""

from __future__ import annotations

import os
import signal
import time

import pytest

from runner import interrupt


def test_a_ctrl_c_python_swallowed_still_stops_the_next_step() -> None:
    """A SIGINT that lands in code whose exceptions Python only reports ("Exception
    ignored in": logging's at-fork handler while a subprocess starts) was lost, and
    `invoke run` went on to exit 0; check(), called before every step, still sees it."""
    before = signal.getsignal(signal.SIGINT)
    try:
        interrupt.catch_sigint()
        interrupt.check()  # no Ctrl-C yet
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs in this thread, here
        except KeyboardInterrupt:
            pass  # dropped, as Python drops it where it cannot raise
        with pytest.raises(interrupt.Interrupted):
            interrupt.check()
        with interrupt.stopping():
            pass  # the interrupted work has unwound: runs may start again
        interrupt.check()
    finally:
        signal.signal(signal.SIGINT, before)

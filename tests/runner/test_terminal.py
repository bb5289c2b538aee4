"""runner.terminal: prompt markers, echo splitting, a real bash on a local pty, and the
latest line a running step shows."""

from __future__ import annotations

import os
import time

import pytest

from runner import terminal


def marker(kind: str, status: str = "") -> bytes:
    return f"\x1b]777;kblog;{kind};{status}\x07".encode()


def fed(*chunks: bytes) -> terminal.Terminal:
    term = terminal.Terminal("t", lambda data: None)
    for chunk in chunks:
        term.feed(chunk)
    return term


def soon() -> float:
    return time.monotonic() + 1.0


class TestMarkers:
    def test_prompt_with_status(self) -> None:
        ex = fed(b"out\r\n" + marker("P", "0") + b"$ ").wait_prompt(soon())
        assert ex.raw == "out\n"
        assert ex.prompt == terminal.Prompt("P", 0)

    def test_non_zero_and_negative_status(self) -> None:
        assert fed(marker("P", "127")).wait_prompt(soon()).prompt == terminal.Prompt("P", 127)
        assert fed(marker("P", "-1")).wait_prompt(soon()).prompt == terminal.Prompt("P", -1)

    def test_python_and_continuation_prompts_have_no_status(self) -> None:
        assert fed(marker("P")).wait_prompt(soon()).prompt == terminal.Prompt("P", None)
        assert fed(marker("C")).wait_prompt(soon()).prompt == terminal.Prompt("C", None)

    def test_marker_split_across_feeds(self) -> None:
        whole = b"hello\r\n" + marker("P", "42")
        for cut in range(1, len(whole)):
            ex = fed(whole[:cut], whole[cut:]).wait_prompt(soon())
            assert ex.prompt == terminal.Prompt("P", 42), cut
            assert ex.raw == "hello\n", cut

    def test_marker_fed_byte_by_byte(self) -> None:
        whole = b"x\r\n" + marker("P", "1") + b"$ "
        ex = fed(*(whole[i : i + 1] for i in range(len(whole)))).wait_prompt(soon())
        assert ex.prompt == terminal.Prompt("P", 1)

    def test_half_a_marker_is_not_a_prompt(self) -> None:
        ex = fed(marker("P", "0")[:-1]).wait_prompt(time.monotonic() + 0.05)
        assert ex.prompt is None

    def test_marker_arriving_from_another_thread(self) -> None:
        import threading

        term = fed(b"slow\r\n")
        timer = threading.Timer(0.1, term.feed, args=(marker("P", "0"),))
        timer.start()
        ex = term.wait_prompt(time.monotonic() + 5)
        timer.join()
        assert ex.prompt == terminal.Prompt("P", 0)
        assert ex.raw == "slow\n"

    def test_consumes_one_prompt_at_a_time(self) -> None:
        term = fed(b"a\r\n" + marker("P", "0") + b"$ b\r\n" + marker("P", "3") + b"$ ")
        first, second = term.wait_prompt(soon()), term.wait_prompt(soon())
        assert (first.raw, first.prompt) == ("a\n", terminal.Prompt("P", 0))
        assert (second.raw, second.prompt) == ("$ b\n", terminal.Prompt("P", 3))

    def test_timeout_returns_what_was_shown(self) -> None:
        ex = fed(b"partial output").wait_prompt(time.monotonic() + 0.05)
        assert ex.prompt is None
        assert ex.raw == "partial output"

    def test_closed_terminal_returns_at_once(self) -> None:
        term = fed(b"bye\r\n")
        term.close(0)
        started = time.monotonic()
        ex = term.wait_prompt(time.monotonic() + 30)
        assert time.monotonic() - started < 1
        assert ex.prompt is None and ex.raw == "bye\n"

    def test_dead_machine_returns_at_once(self) -> None:
        started = time.monotonic()
        ex = fed(b"").wait_prompt(time.monotonic() + 30, alive=lambda: False)
        assert time.monotonic() - started < 1
        assert ex.prompt is None

    def test_control_sequences_are_dropped(self) -> None:
        ex = fed(b"\x1b[?2004h\x1b[1mbold\x1b[0m\r\n\x1b]0;title\x07" + marker("P", "0"))
        assert ex.wait_prompt(soon()).raw == "bold\n"


class TestSplitEcho:
    def test_shell(self) -> None:
        assert terminal.split_echo("$ ls\nfoo\nbar\n", "ls") == ("$ ", "foo\nbar\n")

    def test_python(self) -> None:
        assert terminal.split_echo(">>> f.read()\n'x'\n", "f.read()") == (">>> ", "'x'\n")

    def test_no_output(self) -> None:
        assert terminal.split_echo("$ cd chardev\n", "cd chardev") == ("$ ", "")

    def test_echo_without_newline(self) -> None:
        assert terminal.split_echo("$ f.read()", "f.read()") == ("$ ", "")

    def test_no_echo_leaves_everything_as_output(self) -> None:
        assert terminal.split_echo("Segmentation fault\n", "insmod x.ko") == (
            "",
            "Segmentation fault\n",
        )

    def test_echo_only_searched_on_the_first_line(self) -> None:
        # The same text later in the output is output, not the echo.
        assert terminal.split_echo("other\nls\n", "ls") == ("", "other\nls\n")

    def test_output_repeating_the_input(self) -> None:
        assert terminal.split_echo("$ echo hi\nhi\n", "echo hi") == ("$ ", "hi\n")


class TestLocalBash:
    """The build environment's terminal: a real bash with the marker prompts."""

    @pytest.fixture
    def bash(self, tmp_path):
        term = terminal.Terminal("build", lambda data: None)
        env = terminal.shell_env(os.environ["PATH"], prompt="$")
        handle = terminal.LocalPty(term, terminal.SHELL_ARGV, env, str(tmp_path))
        first = term.wait_prompt(time.monotonic() + 10)
        assert first.prompt == terminal.Prompt("P", 0)
        yield term
        handle.kill()

    def run(self, term: terminal.Terminal, line: str) -> tuple[str, terminal.Prompt | None]:
        term.type_line(line)
        ex = term.wait_prompt(time.monotonic() + 10)
        return terminal.split_echo(ex.raw, line)[1], ex.prompt

    def test_output_and_status(self, bash: terminal.Terminal) -> None:
        assert self.run(bash, "echo hello") == ("hello\n", terminal.Prompt("P", 0))
        assert self.run(bash, "false")[1] == terminal.Prompt("P", 1)
        assert self.run(bash, "(exit 7)")[1] == terminal.Prompt("P", 7)

    def test_continuation_prompt(self, bash: terminal.Terminal) -> None:
        assert self.run(bash, "for i in 1 2; do")[1] == terminal.Prompt("C", None)
        out, prompt = self.run(bash, "echo $i; done")
        assert prompt == terminal.Prompt("P", 0)
        assert out == "1\n2\n"

    def test_exit_closes_the_terminal(self, bash: terminal.Terminal) -> None:
        bash.type_line("exit 3")
        ex = bash.wait_prompt(time.monotonic() + 10)
        assert ex.prompt is None
        deadline = time.monotonic() + 5
        while not bash.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bash.closed and bash.exit_status == 3


def test_last_line_is_what_a_person_sees_last() -> None:
    assert terminal.last_line(b"make -j2\r\n  CC  a.o\r\n  CC  b.o\r\n\r\n") == "CC  b.o"
    # Colours and prompt markers go; of a line redrawn with \r, its last state.
    assert terminal.last_line(b"\x1b[1;32mok\x1b[0m \x1b]777;kblog;P;0\x07") == "ok"
    assert terminal.last_line("copying  10%\r copying  55%\r") == "copying  55%"
    assert terminal.last_line("a\tb\x07c") == "a b c"
    assert terminal.last_line(b"\r\n \r\n") == ""
    long = terminal.last_line("x" * 500, limit=40)
    assert len(long) == 40 and long.endswith("…")


def test_a_terminal_s_latest_line_is_read_without_taking_it() -> None:
    term = terminal.Terminal("t", lambda data: None)
    assert term.latest_line() == ""
    term.feed(b"for i in 1 2; do echo tick $i; done\r\ntick 1\r\ntick 2\r\n")
    assert term.latest_line() == "tick 2"
    term.feed(b"\x1b]777;kblog;P;0\x07$ ")
    assert term.latest_line() == "$"  # the prompt is shown too; the marker is not
    assert term.wait_prompt(0).raw.endswith("tick 2\n")  # nothing was consumed


class TestOutputLimit:
    """A program that prints without end: the terminal keeps `limit` bytes and a window."""

    def test_output_past_the_limit_ends_the_wait_at_once(self) -> None:
        term = terminal.Terminal("t", lambda data: None, limit=1000)
        term.feed(b"y\r\n" * 400)
        assert term.overflowed
        started = time.monotonic()
        ex = term.wait_prompt(time.monotonic() + 30)
        assert time.monotonic() - started < 1
        assert ex.prompt is None and ex.overflow
        assert ex.raw == "y\n" * 333 + "y"  # the first 1000 bytes
        assert not term.overflowed  # taken: what comes next is the next exchange's

    def test_memory_stays_bounded_whatever_comes(self) -> None:
        term = terminal.Terminal("t", lambda data: None, limit=1 << 16)
        chunk = b"a" * 65536
        for _ in range(2000):  # 128 MiB, one endless line
            term.feed(chunk)
        assert term.received == 2000 * 65536
        assert len(term._buf) == 1 << 16
        assert len(term._spill) == terminal.SPILL_WINDOW
        assert term.latest_line().startswith("aaa")

    def test_the_prompt_after_an_interrupt_is_found(self) -> None:
        term = terminal.Terminal("t", lambda data: None, limit=100)
        term.feed(b"x" * 5000 + b"^C\r\n" + marker("P", "130") + b"$ ")
        ex = term.wait_prompt(soon())
        assert ex.overflow and ex.prompt == terminal.Prompt("P", 130)
        assert ex.raw.startswith("x" * 100) and ex.raw.endswith("^C\n")
        term.feed(b"echo hi\r\nhi\r\n" + marker("P", "0"))
        ex = term.wait_prompt(soon())  # the session is usable again
        assert ex == terminal.Exchange("$ echo hi\nhi\n", terminal.Prompt("P", 0))

    def test_a_prompt_before_the_limit_is_not_lost(self) -> None:
        term = terminal.Terminal("t", lambda data: None, limit=100)
        term.feed(b"ok\r\n" + marker("P", "0") + b"z" * 500)
        ex = term.wait_prompt(soon())
        assert ex == terminal.Exchange("ok\n", terminal.Prompt("P", 0))
        ex = term.wait_prompt(soon())  # the background job's output comes after
        assert ex.overflow and ex.prompt is None

    def test_a_long_output_is_searched_once(self) -> None:
        """Each chunk is searched for a marker, not the whole output per chunk."""
        term = terminal.Terminal("t", lambda data: None)
        started = time.monotonic()
        for _ in range(terminal.OUTPUT_LIMIT // 4096):
            term.feed(b"\x1b]" + b"b" * 4094)  # unended OSCs, as a regex's worst case
            assert term.wait_prompt(0, take_rest=False).prompt is None
        ex = term.wait_prompt(0)
        assert not ex.overflow and len(ex.raw) == terminal.OUTPUT_LIMIT
        assert time.monotonic() - started < 10


def test_unended_escape_sequences_are_cleaned_in_linear_time() -> None:
    started = time.monotonic()
    assert terminal.last_line(b"\x1b]" * 300_000 + b"\r\nend") == "end"
    assert time.monotonic() - started < 2


class TestRecording:
    def test_output_in_time_with_a_marker_per_step(self) -> None:
        rec = terminal.Recording(time.monotonic())
        term = terminal.Terminal("t", lambda data: None, recording=rec)
        rec.mark("1")
        term.feed(b"one ")
        term.feed(b"frame")
        time.sleep(terminal.FRAME_SECONDS * 2)
        term.feed(b"\r\nlater")
        assert [e[1:] for e in rec.events] == [["m", "1"], ["o", "one frame"], ["o", "\r\nlater"]]
        times = [float(e[0]) for e in rec.events]
        assert times == sorted(times)
        assert times[2] - times[1] >= terminal.FRAME_SECONDS
        # The terminal itself still sees everything.
        assert term.received == len(b"one frame\r\nlater")

    def test_a_character_split_between_reads_stays_whole(self) -> None:
        rec = terminal.Recording(time.monotonic())
        snowman = "☃".encode()
        rec.output(snowman[:1])
        rec.output(snowman[1:])
        assert "".join(str(e[2]) for e in rec.events) == "☃"

    def test_a_step_s_output_is_cut_at_the_limit_once(self) -> None:
        rec = terminal.Recording(time.monotonic(), step_limit=10)
        rec.mark("1")
        rec.output(b"0123456789abc")
        rec.output(b"more")
        text = "".join(str(e[2]) for e in rec.events if e[1] == "o")
        assert text == "0123456789" + terminal.RECORD_CUT
        rec.mark("2")  # the next step is recorded again
        rec.output(b"next")
        assert rec.events[-1][1:] == ["o", "next"]

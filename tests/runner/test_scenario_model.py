"""runner.scenario: the JSON both sides exchange, and the errors a bad scenario gives."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from runner.judge import verdict
from runner.scenario import (
    KernelEvent,
    Provenance,
    Scenario,
    ScenarioError,
    ScenarioResult,
    Status,
    Step,
    StepResult,
)


def sample() -> Scenario:
    return Scenario(
        name="ep2",
        steps=[
            Step("build", "console", "make", where="build", source="ep2.md:10"),
            Step("t", "console", "sudo insmod chardev.ko", source="ep2.md:20", block=1),
            Step(
                "t",
                "console",
                "sudo dmesg | tail -n 1",
                expected=["...mknod /dev/chardev c @major@ 0..."],
                source="ep2.md:21",
                block=1,
            ),
            Step("py", "pycon", 'f = open("/dev/chardev")\nf.read()', source="ep2.md:30"),
            Step("py", "pycon", "f.read()", expect_hang=True, timeout=3, source="ep2.md:40"),
        ],
    )


class TestRoundTrip:
    def test_scenario_through_json_text(self) -> None:
        scenario = sample()
        text = json.dumps(scenario.to_json())
        assert Scenario.from_json(json.loads(text)) == scenario

    def test_defaults_fill_missing_fields(self) -> None:
        scenario = Scenario.from_json(
            {"name": "s", "steps": [{"session": "t", "language": "console", "input": "ls"}]}
        )
        step = scenario.steps[0]
        assert (step.where, step.expected, step.expect_hang, step.timeout) == (
            "guest",
            None,
            False,
            60.0,
        )

    def test_result_through_json_text(self) -> None:
        result = ScenarioResult(
            scenario="ep2",
            provenance=Provenance(
                "6.1.0-56-amd64",
                "6.1.192-2",
                "tcg",
                "no kvm",
                "7.2.22",
                "2026-11-25T18:00:00+00:00",
                6.0,
                14.4,
            ),
            steps=[
                StepResult(0, "ok", "$ ", "ls", "a\n", 0, 0.1, "guest"),
                StepResult(
                    1,
                    "hang",
                    ">>> ",
                    "f.read()",
                    "",
                    None,
                    3.0,
                    "guest",
                    kernel_log=["[ 7.6] BUG: unable to handle page fault"],
                    events=[KernelEvent("BUG", "BUG: unable to handle page fault")],
                    matched=True,
                    captures={"pid": "121"},
                ),
            ],
            error="",
        )
        text = json.dumps(result.to_json())
        again = ScenarioResult.from_json(json.loads(text))
        assert again == result
        assert isinstance(again.steps[1].events[0], KernelEvent)

    def test_digest_ignores_sources_only(self) -> None:
        a = sample()
        moved = Scenario(a.name, [replace(s, source="other.md:1") for s in a.steps])
        assert moved.digest() == a.digest()
        changed = Scenario(a.name, [*a.steps[:-1], replace(a.steps[-1], timeout=4)])
        assert changed.digest() != a.digest()


class TestValidation:
    def test_sample_is_valid(self) -> None:
        sample().validate()

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"language": "fortran"}, r"unknown language 'fortran'"),
            ({"where": "host"}, r"where='host', expected one of"),
            ({"session": ""}, r"bad session name ''"),
            ({"session": "my session"}, r"bad session name 'my session'"),
            ({"session": "../x"}, r"bad session name"),
            ({"timeout": 0}, r"timeout must be positive"),
            ({"timeout": -1.5}, r"timeout must be positive"),
        ],
    )
    def test_bad_step_names_its_source(self, change: dict[str, object], message: str) -> None:
        step = replace(Step("t", "console", "ls", source="post.md:42"), **change)
        with pytest.raises(ScenarioError, match=rf"^post\.md:42: .*{message}"):
            Scenario("s", [step]).validate()

    def test_python_in_the_build_environment(self) -> None:
        step = Step("b", "pycon", "1 + 1", where="build", source="post.md:7")
        with pytest.raises(ScenarioError, match=r"^post\.md:7: the build environment only runs"):
            Scenario("s", [step]).validate()

    def test_a_guest_terminal_goes_between_shell_and_python(self) -> None:
        # `python3` (or `sudo drgn`) in a shell, pycon blocks in it, `exit()`, the shell.
        steps = [
            Step("t", "console", "python3 -q", source="post.md:1"),
            Step("t", "pycon", "1", source="post.md:2"),
            Step("t", "console", "ls", source="post.md:3"),
        ]
        Scenario("s", steps).validate()

    def test_session_reused_as_gdb(self) -> None:
        steps = [
            Step("t", "pycon", "1", source="post.md:1"),
            Step("t", "gdb", "bt", source="post.md:2"),
        ]
        with pytest.raises(ScenarioError, match=r"^post\.md:2: session 't' is a python session"):
            Scenario("s", steps).validate()

    def test_session_reused_in_another_environment(self) -> None:
        steps = [
            Step("t", "console", "ls", source="post.md:1"),
            Step("t", "console", "make", where="build", source="post.md:3"),
        ]
        with pytest.raises(ScenarioError, match=r"^post\.md:3: .*guest environment"):
            Scenario("s", steps).validate()

    def test_first_bad_step_wins(self) -> None:
        steps = [
            Step("t", "console", "ls", source="post.md:1"),
            Step("t", "klingon", "x", source="post.md:2"),
            Step("u", "console", "y", where="moon", source="post.md:3"),
        ]
        with pytest.raises(ScenarioError, match=r"^post\.md:2:"):
            Scenario("s", steps).validate()

    @pytest.mark.parametrize(
        "data",
        [
            {"steps": []},
            {"name": "s"},
            {"name": "s", "steps": [{"session": "t", "language": "console"}]},
            {
                "name": "s",
                "steps": [{"session": "t", "language": "console", "input": "ls", "colour": "red"}],
            },
            {"name": "s", "steps": ["ls"]},
        ],
    )
    def test_malformed_json_is_a_scenario_error(self, data: dict[str, object]) -> None:
        with pytest.raises(ScenarioError, match="malformed scenario"):
            Scenario.from_json(data)


def test_statuses_that_fail_and_their_stored_form() -> None:
    def res(i: int, status: str, matched: bool | None = None) -> StepResult:
        return StepResult(i, Status(status), "$ ", "x", "", 0, 0.0, "guest", matched=matched)

    result = ScenarioResult(
        "s",
        Provenance("r", "v", "tcg", "", "q", "t", 0.0, 0.0),
        [
            res(0, "ok"),
            res(1, "ok", True),
            res(2, "ok", False),
            res(3, "hang"),
            res(4, "panic"),
            res(5, "not-run"),
            res(6, "timeout"),
            res(7, "lost"),
            res(8, "unexpected-return"),
            res(9, "incomplete-input"),
        ],
    )
    assert [s.index for s in result.steps if not verdict.passed(s)] == [2, 4, 5, 6, 7, 8, 9]
    assert asdict(result)["steps"][3]["status"] == "hang"
    again = ScenarioResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again.steps[4].status is Status.PANIC

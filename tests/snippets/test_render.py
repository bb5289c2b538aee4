"""The HTML of a captured block says where each block ran."""

from __future__ import annotations

from blockhtml import render_block

from runner.scenario import Status, Step, StepResult


def _result(where: str, kernel: str) -> StepResult:
    return StepResult(0, Status.OK, "$ ", "uname -r", kernel, 0, 0.1, where, kernel=kernel)


def test_a_block_on_the_built_kernel_names_it() -> None:
    step = Step("t1", "console", "uname -r", boot="built")
    html = render_block([step], {"6.1": [_result("guest", "6.1.192-kblog")]})
    assert 'class="kb-where">guest VM on the kernel built above, 6.1.192-kblog<' in html


def test_a_block_on_the_stock_kernel_says_guest_vm() -> None:
    step = Step("t1", "console", "uname -r")
    html = render_block([step], {"6.1": [_result("guest", "6.1.0-56-amd64")]})
    assert 'class="kb-where">guest VM<' in html

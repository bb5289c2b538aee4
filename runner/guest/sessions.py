"""The programs guest terminals run, and the pool of them a saved guest keeps ready.

One spawn request per kind of session: the runs that open terminals and the
snapshot that starts some ahead ask for the same programs, so the agent can hand a
pooled terminal to a run (its op_adopt) when the programs are the same. Under TCG
bash takes 0.3 s to show its first prompt and python3 0.5 s; a pooled one has
done that before the guest was saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from runner import config, terminal
from runner.guest.agent_client import AgentClient, Program

GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYSTARTUP = "/opt/kblog/pystartup.py"
# What one guest of a post uses at most today: two shells and a Python.
POOL = ("shell", "shell", "python")
POOL_POLL = 0.05


class PoolError(RuntimeError):
    """The pooled terminals did not reach their prompts."""


def program(kind: str) -> Program:
    """The spawn request, without its session name, of a guest terminal of `kind`
    (a Step's kind: "python" or "shell")."""
    if kind == "python":
        argv, env = terminal.PYTHON_ARGV, terminal.python_env(GUEST_PATH, PYSTARTUP)
    else:
        argv, env = terminal.SHELL_ARGV, terminal.shell_env(GUEST_PATH)
    return Program(argv, env, config.GUEST_USER, config.GUEST_HOME)


def start_pool(agent: AgentClient, deadline: float, alive: Callable[[], bool]) -> None:
    """Start the POOL's terminals and wait until each shows its first prompt: a
    guest saved then has them idle, as a person's terminal waits for a command."""
    for n, kind in enumerate(POOL):
        agent.spawn(f"pool-{n}", program(kind), pool=True)
    while True:
        held = agent.pool()
        waiting = [n for n, out in held.items() if not _prompted(out)]
        if not waiting and len(held) == len(POOL):
            return
        if time.monotonic() > deadline or not alive():
            raise PoolError(f"pooled terminals {', '.join(waiting)} never showed a prompt")
        time.sleep(POOL_POLL)


def _prompted(output: bytes) -> bool:
    """Whether a terminal's output so far has a prompt."""
    return terminal.MARKER.search(output) is not None


def adopt(agent: AgentClient, wanted: dict[str, str]) -> list[str]:
    """Take pooled terminals for the sessions `wanted` (name -> kind), in order;
    the agent ends the pooled ones left over. The names it could serve."""
    return agent.adopt({name: program(kind) for name, kind in wanted.items()})

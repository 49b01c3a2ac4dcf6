"""What ``inferwatch up`` supervises: each child process's state and restarts."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Snapshot

ChildState = Literal["running", "backoff", "stopped"]


class SupervisedChild(msgspec.Struct, frozen=True, kw_only=True):
    """One child process of ``inferwatch up``.

    Attributes:
        name: the child (a service name, ``nats-server`` or ``simulators``).
        state: ``running``; ``backoff`` (exited, waiting to be restarted); ``stopped``.
        pid: its PID while running, else 0.
        restarts_total: restarts since ``inferwatch up`` started.
        last_exit_code: the last exit status (negative: killed by that signal number); ``None`` before any exit.
    """

    name: str
    state: ChildState
    pid: int = 0
    restarts_total: int = 0
    last_exit_code: int | None = None


class SupervisorSnapshot(Snapshot, frozen=True, kw_only=True, tag="supervisor.children"):
    """The children of one ``inferwatch up``. ``source`` is its instance id (``up@<host>:<pid>``).

    Attributes:
        children: every supervised child, in start order.
    """

    children: list[SupervisedChild]

"""What a simulator gives the demo runner: environment for the collectors, a scenario loop, a stop."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from inferwatch.simulators.scenarios import Scenario


@dataclass
class Demo:
    """A running simulator.

    Attributes:
        env: variables that point collectors at it (``INFERWATCH_VLLM_TARGETS=…``).
        runners: aiohttp runners to clean up.
        run: optional scenario coroutine (runs until cancelled).
        scenarios: named alert scenarios (``simulators.scenarios``) switchable over the control API.
        cleanup: callables run after the runners stop (temporary files and directories).
    """

    env: dict[str, str]
    runners: list[web.BaseRunner] = field(default_factory=list)
    run: Callable[[], Awaitable[None]] | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    async def stop(self) -> None:
        """Stop every server, then clean up."""
        for runner in self.runners:
            await runner.cleanup()
        for step in self.cleanup:
            with contextlib.suppress(OSError):
                step()

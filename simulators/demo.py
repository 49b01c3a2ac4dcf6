"""What a simulator gives the demo runner: environment for the collectors, a scenario loop, a stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Demo:
    """A running simulator.

    Attributes:
        env: variables that point collectors at it (``INFERWATCH_VLLM_TARGETS=…``).
        runners: aiohttp runners to clean up.
        run: optional scenario coroutine (runs until cancelled).
    """

    env: dict[str, str]
    runners: list[web.BaseRunner] = field(default_factory=list)
    run: Callable[[], Awaitable[None]] | None = None

    async def stop(self) -> None:
        """Stop every server."""
        for runner in self.runners:
            await runner.cleanup()

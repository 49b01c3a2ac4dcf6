"""Drift-free periodic work: a fixed grid of deadlines on the monotonic clock.

A collector's cycle is due at ``start, start + interval, start + 2 * interval…`` however long each cycle takes
(sleeping a whole interval after the work would drift by the work's duration every cycle). A cycle that overruns
one or more ticks skips them: the next cycle starts on the next tick still ahead, never in a burst to catch up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
#: Waits up to that many seconds and says whether the service should stop (``ServiceContext.sleep``).
StopAwareWait = Callable[[float], Awaitable[bool]]


class Ticker:
    """The deadlines of one periodic task.

    Args:
        interval_s: distance between ticks (> 0).
        clock: monotonic clock.
        first_in_s: how far from now the first tick is (0: due at once).
    """

    def __init__(self, interval_s: float, *, clock: Clock = time.monotonic, first_in_s: float = 0.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_s = interval_s
        self._clock = clock
        self.deadline = clock() + first_in_s
        self.skipped = 0  # ticks missed by overrunning cycles, in total

    def due(self) -> bool:
        """Whether the current tick has come."""
        return self._clock() >= self.deadline

    def seconds_left(self) -> float:
        """Seconds until the current tick (0 when due)."""
        return max(0.0, self.deadline - self._clock())

    def advance(self) -> None:
        """Move to the next tick still ahead (the work for the current one is done)."""
        self.deadline += self.interval_s
        late = self._clock() - self.deadline
        if late > 0:  # the cycle overran whole ticks: skip them rather than bursting to catch up
            missed = math.ceil(late / self.interval_s)
            self.deadline += missed * self.interval_s
            self.skipped += missed


async def run_every(
    interval_s: float, cycle: Callable[[], Awaitable[None]], wait: StopAwareWait, *, clock: Clock = time.monotonic
) -> None:
    """Run ``cycle`` at once and then on every tick until ``wait`` says stop (it is told the time to the next tick).

    Pass the service's ``ctx.sleep`` as ``wait``: it returns as soon as the service is asked to stop.
    """
    ticker = Ticker(interval_s, clock=clock)
    while True:
        await cycle()
        ticker.advance()
        if await wait(ticker.seconds_left()):
            return

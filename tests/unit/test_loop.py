"""The drift-free polling loop, on a fake clock: no drift, no bursts after an overrun, a prompt stop."""

from __future__ import annotations

import pytest

from inferwatch.shared.loop import Ticker, run_every


class FakeTime:
    """A monotonic clock that only moves when the code under test works or waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.stop_after = 0  # wait() reports a stop on this call (1-based); 0: never

    def clock(self) -> float:
        return self.now

    async def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if len(self.waits) == self.stop_after:
            return True
        self.now += seconds
        return False


async def test_cycles_start_on_a_fixed_grid_whatever_each_cycle_costs() -> None:
    fake = FakeTime()
    fake.stop_after = 5
    started: list[float] = []
    work = iter([0.3, 1.2, 0.0, 4.9, 0.1])

    async def cycle() -> None:
        started.append(fake.now)
        fake.now += next(work)

    await run_every(5.0, cycle, fake.wait, clock=fake.clock)
    assert started == [1000.0, 1005.0, 1010.0, 1015.0, 1020.0]  # sleeping 5 s after the work would drift by 6.5 s
    assert fake.waits == pytest.approx([4.7, 3.8, 5.0, 0.1, 4.9])


async def test_an_overrunning_cycle_skips_missed_ticks_instead_of_bursting() -> None:
    fake = FakeTime()
    fake.stop_after = 3
    started: list[float] = []
    work = iter([12.0, 1.0, 1.0])

    async def cycle() -> None:
        started.append(fake.now)
        fake.now += next(work)

    await run_every(5.0, cycle, fake.wait, clock=fake.clock)
    assert started == [1000.0, 1015.0, 1020.0]  # ticks 1005 and 1010 were skipped, not run back to back
    assert fake.waits == [3.0, 4.0, 4.0]


async def test_a_stop_during_the_wait_ends_the_loop_without_another_cycle() -> None:
    fake = FakeTime()
    fake.stop_after = 1
    cycles = 0

    async def cycle() -> None:
        nonlocal cycles
        cycles += 1

    await run_every(5.0, cycle, fake.wait, clock=fake.clock)
    assert cycles == 1


def test_ticker_due_seconds_left_and_skips() -> None:
    fake = FakeTime()
    ticker = Ticker(10.0, clock=fake.clock, first_in_s=10.0)
    assert (ticker.due(), ticker.seconds_left()) == (False, 10.0)
    fake.now += 10.0
    assert (ticker.due(), ticker.seconds_left()) == (True, 0.0)
    fake.now += 25.0  # the work for the 1010 tick ran until 1035: ticks 1020 and 1030 are gone
    ticker.advance()
    assert (ticker.deadline, ticker.skipped) == (1040.0, 2)
    fake.now = 1040.0  # exactly on time: nothing skipped
    ticker.advance()
    assert (ticker.deadline, ticker.skipped) == (1050.0, 2)
    with pytest.raises(ValueError, match="interval_s"):
        Ticker(0.0)

"""The scraper's request fan-out helpers: results settle like gather(return_exceptions=True), cancels propagate."""

from __future__ import annotations

import asyncio

import pytest

from inferwatch.services.vllm_scraper.app import _concurrently, _settled


async def _value(v: int, delay_s: float = 0.0) -> int:
    await asyncio.sleep(delay_s)
    return v


async def _fails() -> int:
    await asyncio.sleep(0)
    raise ValueError("upstream said no")


async def test_settled_gives_the_result_or_the_exception() -> None:
    assert await _settled(_value(3)) == 3
    failed = await _settled(_fails())
    assert isinstance(failed, ValueError)
    assert str(failed) == "upstream said no"


async def test_concurrently_runs_both_at_once_and_settles_each() -> None:
    second_started = asyncio.Event()

    async def first_waits_for_second() -> int:  # one after the other this would never finish
        await second_started.wait()
        return 1

    async def second() -> int:
        second_started.set()
        return 2

    assert await asyncio.wait_for(_concurrently(first_waits_for_second(), second()), 5) == (1, 2)
    first_r, second_r = await _concurrently(_fails(), _value(2))
    assert isinstance(first_r, ValueError)
    assert second_r == 2
    first_r, second_r = await _concurrently(_value(1), _fails())
    assert first_r == 1
    assert isinstance(second_r, ValueError)


async def test_cancelling_the_scrape_cancels_the_request_beside_it() -> None:
    second_cancelled = asyncio.Event()

    async def slow_second() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            second_cancelled.set()
            raise
        return 2

    scrape = asyncio.ensure_future(_concurrently(_value(1, 10), slow_second()))
    await asyncio.sleep(0.05)
    scrape.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scrape
    await asyncio.wait_for(second_cancelled.wait(), 1)

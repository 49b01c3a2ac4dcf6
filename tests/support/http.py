"""The upstream client in tests: a client with recorded sleeps, its outcome counters, the error a call raises."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from inferwatch.shared.http import UpstreamClient, UpstreamError, UpstreamMetrics

MB = 1024 * 1024
"""A mebibyte, for body sizes and caps."""


class Sleeps:
    """Injectable sleep that records delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def requests(registry: CollectorRegistry, endpoint: str, outcome: str, api: str = "test") -> float:
    """inferwatch_upstream_requests_total for one endpoint and outcome (0 when never counted)."""
    value = registry.get_sample_value(
        "inferwatch_upstream_requests_total", {"api": api, "endpoint": endpoint, "outcome": outcome}
    )
    return value or 0.0


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """One sample's value in ``registry`` (0 when absent)."""
    return registry.get_sample_value(name, labels) or 0.0


def client(url: str, metrics: UpstreamMetrics, **kwargs: Any) -> UpstreamClient:
    """An UpstreamClient for ``url`` that records its sleeps instead of waiting (2 s timeout)."""
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("timeout_s", 2.0)
    return UpstreamClient("test", url, metrics=metrics, **kwargs)


async def expect_error(call: Awaitable[Any]) -> UpstreamError:
    """The UpstreamError ``call`` raises (fails the test when it raises none)."""
    with pytest.raises(UpstreamError) as info:
        await call
    return info.value

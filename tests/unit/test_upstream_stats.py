"""Upstream call statistics come from the clients' own store, per upstream, and match the exported families."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry

from inferwatch.shared.http import (
    BreakerPolicy,
    CallPolicy,
    ClientSeams,
    Outcome,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
)
from inferwatch.shared.service import upstream_call_stats


def _ctx(registry: CollectorRegistry) -> SimpleNamespace:
    return SimpleNamespace(registry=registry, instance="vllm-scraper@test", name="vllm-scraper", heartbeat_interval_s=5)


async def test_call_stats_are_per_upstream_and_agree_with_the_exported_families() -> None:
    registry = CollectorRegistry()
    assert upstream_call_stats(_ctx(registry)) is None  # type: ignore[arg-type]
    metrics = UpstreamMetrics.of(registry)
    assert UpstreamMetrics.of(registry) is metrics
    failing = ClientSeams(transport=httpx.MockTransport(lambda _r: httpx.Response(503)))
    healthy = ClientSeams(transport=httpx.MockTransport(lambda _r: httpx.Response(200, text="ok")))
    policy = CallPolicy(retry=RetryPolicy(attempts=1), breaker=BreakerPolicy(failure_threshold=1))
    down = UpstreamClient("vllm", "http://a:8000", metrics=metrics, policy=policy, seams=failing)
    up = UpstreamClient("vllm", "http://b:8000", metrics=metrics, policy=policy, seams=healthy)
    with pytest.raises(UpstreamError) as failed:
        await down.get("/metrics")
    assert failed.value.outcome is Outcome.HTTP_5XX
    with pytest.raises(UpstreamError) as refused:
        await down.get("/metrics")
    assert refused.value.outcome is Outcome.CIRCUIT_OPEN
    await up.get("/metrics")

    stats = upstream_call_stats(_ctx(registry))  # type: ignore[arg-type]
    assert stats is not None
    assert stats.circuits == {"vllm http://a:8000": "open", "vllm http://b:8000": "closed"}
    [endpoint] = stats.endpoints
    assert (endpoint.api, endpoint.endpoint) == ("vllm", "/metrics")
    assert endpoint.outcomes == {"http_5xx": 1.0, "circuit_open": 1.0, "ok": 1.0}
    for outcome, count in endpoint.outcomes.items():
        labels = {"api": "vllm", "endpoint": "/metrics", "outcome": outcome}
        assert registry.get_sample_value("inferwatch_upstream_requests_total", labels) == count
    exported_sum = registry.get_sample_value(
        "inferwatch_upstream_request_duration_seconds_sum", {"api": "vllm", "endpoint": "/metrics"}
    )
    assert exported_sum == pytest.approx(endpoint.duration_sum_s)
    count = registry.get_sample_value(
        "inferwatch_upstream_request_duration_seconds_count", {"api": "vllm", "endpoint": "/metrics"}
    )
    assert count == 2  # the fail-fast call never reached the network
    assert registry.get_sample_value("inferwatch_upstream_circuit_state", {"api": "vllm"}) == 2

    await down.aclose()
    stats = upstream_call_stats(_ctx(registry))  # type: ignore[arg-type]
    assert stats is not None
    assert stats.circuits == {"vllm http://b:8000": "closed"}
    await up.aclose()

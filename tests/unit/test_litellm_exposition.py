"""The LiteLLM simulator's exposition is typed the way prometheus_client types it."""

from __future__ import annotations

from inferwatch.shared.exposition import parse_exposition
from inferwatch.simulators.litellm import SimulatedLitellm
from tests.support.litellm import MARKER


def test_simulator_exposition_is_typed_like_prometheus_client() -> None:
    """Counters are declared with their ``_total`` name (text 0.0.4), so a strict parser types them."""
    for version in ("1.106.2", "1.70.0"):
        sim = SimulatedLitellm(MARKER, scenario="failing", version=version)
        sim.traffic(2)
        fams = parse_exposition(sim.exposition().encode())
        requests = "litellm_requests_metric" if version == "1.70.0" else "litellm_proxy_total_requests_metric"
        assert fams[requests].type == "counter"
        assert fams[requests].samples
        assert fams["litellm_deployment_state"].type == "gauge"
        assert fams["litellm_request_total_latency_metric"].type == "histogram"

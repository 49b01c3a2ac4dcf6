"""deploy/nats/nats-server.conf declares a user for every registered service."""

from __future__ import annotations

from tests.support.deploy import NATS_USERS


def test_every_service_has_a_user() -> None:
    assert {u for u, _ in NATS_USERS} >= {
        "aggregator",
        "docker-watcher",
        "vllm-scraper",
        "epp-scraper",
        "litellm-poller",
        "langfuse-ingester",
        "gpu-agent",
        "model-catalog",
        "reader",
    }

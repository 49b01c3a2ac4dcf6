"""The aggregator's status payload lists sources, models and inferwatch up's processes (no browser, no server)."""

from __future__ import annotations

from inferwatch.services.aggregator.status_page import status_payload
from tests.support.aggregator import make_aggregator


def test_status_payload_lists_sources_and_models() -> None:
    payload = status_payload(make_aggregator())
    assert {s["source"] for s in payload["sources"]} == {"gpu-host-1", "catalog", "up@host:1"}
    assert all(s["state"] == "up" for s in payload["sources"])
    assert [m["name"] for m in payload["models"]] == ["bge-m3", "qwen3-8b"]
    assert payload["alerts"] == []
    assert [(p["name"], p["state"], p["restarts_total"]) for p in payload["processes"]] == [
        ("aggregator", "running", 0),
        ("litellm-poller", "backoff", 5),
    ]

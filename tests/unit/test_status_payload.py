"""The aggregator's status payload lists sources, models and inferwatch up's processes (no browser, no server)."""

from __future__ import annotations

import time

import pytest

from inferwatch.services.aggregator.status_page import status_payload
from tests.support.aggregator import burning_slos, make_aggregator


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


def test_status_payload_shows_each_slo_per_model_with_its_error_budget() -> None:
    aggregator = make_aggregator()
    aggregator.slos = burning_slos(time.time())
    (availability,) = [s for s in status_payload(aggregator)["slos"] if s["slo"] == "vllm-availability"]
    assert availability["model"] == "qwen3-8b"
    assert availability["objective"] == 0.99
    assert availability["error_budget_remaining"] == pytest.approx(0.0)  # 1 % bad of a 1 % budget: all spent
    assert availability["burn_rates"]["5m"] == pytest.approx(1.0)

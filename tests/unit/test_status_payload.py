"""The aggregator's status payload: models first with their figures, GPUs per host with their containers, LiteLLM
proxies and Langfuse projects, inferwatch's own parts marked (no browser, no server)."""

from __future__ import annotations

import time

import pytest

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.catalog import CatalogEntry
from inferwatch.contracts.gpu import GpuHostSnapshot, GpuProcess, GpuReading
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.langfuse import LangfuseProjectSnapshot
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot
from inferwatch.services.aggregator.rule_engine import histogram_quantile
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.aggregator.status_page import (
    LiveModelStats,
    ModelLive,
    model_figures,
    status_payload,
    sum_histograms,
)
from tests.support.aggregator import (
    burning_slos,
    catalog_snapshot,
    make_aggregator,
    populated_aggregator,
    supervisor_snapshot,
    vllm_snapshot,
)


def test_status_payload_lists_sources_and_models() -> None:
    payload = status_payload(make_aggregator())
    assert {s["source"] for s in payload["sources"]} == {"gpu-host-1", "catalog", "up@host:1"}
    assert all(s["state"] == "up" for s in payload["sources"])
    # available models first
    assert [m["name"] for m in payload["models"]] == ["qwen3-8b", "bge-m3"]
    assert payload["alerts"] == []
    assert [(p["name"], p["state"], p["restarts_total"]) for p in payload["processes"]] == [
        ("aggregator", "running", 0),
        ("litellm-poller", "backoff", 5),
    ]
    # the user's systems before inferwatch's own parts
    assert [(s["source"], s["own"]) for s in payload["sources"]] == [
        ("gpu-host-1", False),
        ("catalog", True),
        ("up@host:1", True),
    ]


def _latency(*counts: float) -> Histogram:
    """An e2e latency histogram over the bounds 0.1, 0.5, 1, 2.5 s with these cumulative counts (+Inf = last)."""
    return Histogram(buckets=list(zip((0.1, 0.5, 1.0, 2.5), counts, strict=True)), sum=0.0, count=counts[-1])


def _vllm(observed_at: float, requests: float, latency: Histogram, **kw: object) -> VllmInstanceSnapshot:
    engine = VllmEngineStats(
        model_name="qwen3-8b", request_success_total={"stop": requests}, e2e_request_latency_seconds=latency
    )
    return vllm_snapshot(observed_at=observed_at, engines=[engine], **kw)


def test_histogram_quantile_interpolates_like_promql() -> None:
    # 100 observations: 50 ≤ 0.1 s, 90 ≤ 0.5 s, 100 ≤ 1 s: the 95th lies halfway through (0.5, 1]
    assert histogram_quantile(0.95, _latency(50, 90, 100, 100)) == 0.75
    # rank in the first bucket interpolates from 0
    assert histogram_quantile(0.5, _latency(100, 100, 100, 100)) == 0.05
    # two histograms are summed before the quantile
    assert histogram_quantile(0.95, sum_histograms([_latency(50, 90, 100, 100), _latency(50, 90, 100, 100)])) == 0.75
    assert histogram_quantile(0.95, _latency(0, 0, 0, 0)) is None
    assert histogram_quantile(0.95, sum_histograms([])) is None


def test_live_stats_give_the_rate_and_p95_of_the_last_interval() -> None:
    live = LiveModelStats()
    first = live.update([_vllm(100.0, 1000, _latency(500, 900, 1000, 1000))])
    # one snapshot: no rate yet; latency over the lifetime
    assert first["qwen3-8b"] == ModelLive(request_rate=None, p95_latency_s=0.75, instances=1)
    # the same snapshot again (the page polls faster than the scraper): nothing changes
    assert live.update([_vllm(100.0, 1000, _latency(500, 900, 1000, 1000))]) == first
    # 15 s later 150 more requests, all of them between 1 and 2.5 s
    later = live.update([_vllm(115.0, 1150, _latency(500, 900, 1000, 1150))])["qwen3-8b"]
    assert later.request_rate == 10.0
    assert later.p95_latency_s is not None
    assert 1.0 < later.p95_latency_s <= 2.5
    # an engine restart (counters fell) forgets the previous reading instead of a negative rate
    restarted = live.update([_vllm(130.0, 5, _latency(5, 5, 5, 5))])["qwen3-8b"]
    assert restarted.request_rate is None
    # a source that went away is forgotten
    assert live.update([]) == {}


def test_model_figures_are_one_ordered_list_of_label_value_rows() -> None:
    entry = CatalogEntry(name="m", parameter_count=8_190_000_000, quantization="awq", max_context=32768)
    assert model_figures(entry, ModelLive(request_rate=2.5, p95_latency_s=0.42, instances=1)) == [
        ("p95 latency", "420 ms"),
        ("requests", "2.50/s"),
        ("size", "8.2B parameters"),
        ("quantization", "awq"),
        ("context", "32,768 tokens"),
    ]
    # what is unknown is left out, never shown as zero
    assert model_figures(CatalogEntry(name="m"), None) == []


def test_payload_joins_gpus_to_containers_and_lists_proxies_and_projects() -> None:
    table = SourceTable({}, tombstone_s=600.0)
    now = time.monotonic()
    base = {"observed_at": time.time(), "collector": "c", "interval_s": 1.0}
    container = "3f2a9c0d1e2b" + "0" * 52
    gpu = GpuReading(
        index=0,
        uuid="GPU-1",
        name="NVIDIA H100",
        utilization_ratio=0.7,
        memory_used_bytes=40 * 2**30,
        memory_total_bytes=80 * 2**30,
        processes=[GpuProcess(pid=7, used_memory_bytes=1.0, container_id=container[:12])],
    )
    for event in (
        catalog_snapshot(),
        supervisor_snapshot(),
        _vllm(time.time(), 10, _latency(1, 2, 3, 4), container_id=container),
        GpuHostSnapshot(source="gpu-host-1", nvml_available=True, gpus=[gpu], driver_version="550", **base),
        LitellmProxySnapshot(source="http://litellm:4000", up=False, error="timeout", version="1.80", **base),
        LangfuseProjectSnapshot(source="prod", up=True, server_version="3.1", **base),
        Heartbeat(source="vllm-scraper/a", service="vllm-scraper", version="0", started_at=0, ready=True, **base),
    ):
        table.apply(event, now)
    payload = status_payload(type("Agg", (), {"table": table})())
    (host,) = payload["gpu_hosts"]
    assert host["host"] == "gpu-host-1"
    assert host["gpus"][0]["containers"] == ["vllm-qwen"]
    assert host["gpus"][0]["models"] == ["qwen3-8b"]
    assert [(p["source"], p["state"], p["error"], p["version"]) for p in payload["proxies"]] == [
        ("http://litellm:4000", "degraded", "timeout", "1.80")
    ]
    assert [(p["source"], p["state"]) for p in payload["projects"]] == [("prod", "up")]
    own = {s["source"] for s in payload["sources"] if s["own"]}
    assert own == {"catalog", "up@host:1", "vllm-scraper/a"}
    # the served model's card carries its live figures
    qwen = next(m for m in payload["models"] if m["name"] == "qwen3-8b")
    assert [label for label, _ in qwen["figures"]] == ["p95 latency", "size"]


def test_systems_that_stopped_reporting_stay_in_their_sections_as_down() -> None:
    aggregator = populated_aggregator()
    aggregator.table.expire(time.monotonic() + 3600)
    payload = status_payload(aggregator)
    assert [(h["host"], h["state"], h["gpus"]) for h in payload["gpu_hosts"]] == [("gpu-host-1", "down", [])]
    assert [(p["source"], p["state"]) for p in payload["proxies"]] == [("http://litellm:4000", "down")]
    assert [(p["source"], p["state"]) for p in payload["projects"]] == [("prod", "down")]
    assert payload["models"] == []  # the catalog itself expired
    assert {s["state"] for s in payload["sources"]} == {"down"}


def test_status_payload_shows_each_slo_per_model_with_its_error_budget() -> None:
    aggregator = make_aggregator()
    aggregator.slos = burning_slos(time.time())
    (availability,) = [s for s in status_payload(aggregator)["slos"] if s["slo"] == "vllm-availability"]
    assert availability["model"] == "qwen3-8b"
    assert availability["objective"] == 0.99
    assert availability["error_budget_remaining"] == pytest.approx(0.0)  # 1 % bad of a 1 % budget: all spent
    assert availability["burn_rates"]["5m"] == pytest.approx(1.0)

"""An aggregator state with a catalog and a GPU host, as the status page reads it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import msgspec
import yaml
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.catalog import CatalogEntry, ModelCatalogSnapshot
from inferwatch.contracts.gpu import GpuHostSnapshot, GpuProcess, GpuReading
from inferwatch.contracts.supervisor import SupervisedChild, SupervisorSnapshot
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot, VllmModelCard
from inferwatch.services.aggregator.domains.gpu import render_gpu_host
from inferwatch.services.aggregator.economics import EconomicsFile, EconomicsTracker
from inferwatch.services.aggregator.render import SeriesWriter
from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE
from inferwatch.services.aggregator.slo import DEFAULT_SLO_FILE, SloEvaluator, load_slos
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.vllm_scraper.core import read_instance


def catalog_snapshot() -> ModelCatalogSnapshot:
    """A model catalog with one available vLLM model and one unavailable LiteLLM embedding model."""
    return ModelCatalogSnapshot(
        source="catalog",
        observed_at=time.time(),
        collector="c",
        interval_s=1.0,
        entries=[
            CatalogEntry(
                name="qwen3-8b",
                model_id="Qwen/Qwen3-8B",
                providers=["vllm"],
                available=True,
                endpoints=["http://10.0.0.5:8000"],
                parameter_count=8_190_000_000,
                hf_url="https://huggingface.co/Qwen/Qwen3-8B",
            ),
            CatalogEntry(
                name="bge-m3",
                model_id="BAAI/bge-m3",
                model_type="embedding",
                providers=["litellm"],
                endpoints=["http://litellm:4000"],
                available=False,
            ),
        ],
    )


def _noop(_event: object, _w: SeriesWriter) -> None:
    """A renderer that writes nothing (the status page reads the catalog from the table, not /metrics)."""


def supervisor_snapshot() -> SupervisorSnapshot:
    """An ``inferwatch up`` with a running aggregator and a crash-looping litellm-poller."""
    return SupervisorSnapshot(
        source="up@host:1",
        observed_at=time.time(),
        collector="up@host:1",
        interval_s=1.0,
        children=[
            SupervisedChild(name="aggregator", state="running", pid=42),
            SupervisedChild(name="litellm-poller", state="backoff", restarts_total=5, last_exit_code=2),
        ],
    )


def make_aggregator() -> SimpleNamespace:
    """The part of an aggregator the status page reads (``.table`` and the ``.lock`` it reads it under): a GPU host,
    the catalog, ``up``'s children."""
    table = SourceTable(
        {GpuHostSnapshot: render_gpu_host, ModelCatalogSnapshot: _noop, SupervisorSnapshot: _noop}, tombstone_s=600.0
    )
    now = time.monotonic()
    table.apply(
        GpuHostSnapshot(
            source="gpu-host-1", observed_at=time.time(), collector="c", interval_s=1.0, nvml_available=True
        ),
        now,
    )
    table.apply(catalog_snapshot(), now)
    table.apply(supervisor_snapshot(), now)
    return SimpleNamespace(table=table, lock=threading.Lock())


def vllm_snapshot(
    source: str = "http://10.0.0.1:8000", observed_at: float = 100.0, **kw: object
) -> VllmInstanceSnapshot:
    """A ready vLLM 0.33 instance with one engine of qwen3-8b; ``kw`` overrides snapshot fields."""
    engines = [
        VllmEngineStats(
            model_name="qwen3-8b",
            engine="0",
            requests_running=3,
            requests_waiting=1,
            kv_cache_usage_ratio=0.42,
            prompt_tokens_total=1000,
            generation_tokens_total=5000,
            request_success_total={"stop": 10, "length": 2},
            time_to_first_token_seconds=Histogram(buckets=[(0.1, 4.0), (0.5, 9.0)], sum=2.5, count=12.0),
        )
    ]
    fields: dict[str, object] = {
        "up": True,
        "status": "ready",
        "health_ok": True,
        "version": "0.33.0",
        "generation": "v1",
        "models": [VllmModelCard(id="qwen3-8b", max_model_len=32768)],
        "engines": engines,
        "container_name": "vllm-qwen",
        **kw,
    }
    return VllmInstanceSnapshot(source=source, observed_at=observed_at, collector="test", interval_s=1.0, **fields)  # type: ignore[arg-type]


def scraped_vllm_snapshot(body: bytes, source: str = "t") -> VllmInstanceSnapshot:
    """The snapshot of an up instance whose ``/metrics`` answered ``body`` (caps wide enough for every fixture)."""
    reading = read_instance(body, None, None, max_engines=64, max_models=64)
    return VllmInstanceSnapshot(
        source=source,
        observed_at=0.0,
        collector="test",
        interval_s=5.0,
        up=True,
        engines=reading.engines,
        lora=reading.lora,
        http=reading.http,
        dropped_series=reading.dropped,
    )


def economics_tracker(container_id: str = "c" * 64) -> EconomicsTracker:
    """A tracker after two ticks 10 s apart: qwen3-8b on one H100 at 360 W, 3.60 USD per GPU-hour, 100 output
    tokens per second (so 10 USD per million tokens, 1 kWh per million tokens, 100 output tokens per GPU-second)."""
    tracker = EconomicsTracker(EconomicsFile(gpu_hour_usd={"NVIDIA H100 80GB HBM3": 3.6}, tick_s=10))
    reading = GpuReading(
        index=0,
        uuid="GPU-0",
        name="NVIDIA H100 80GB HBM3",
        power_draw_watts=360.0,
        processes=[GpuProcess(pid=1, used_memory_bytes=1e9, container_id=container_id)],
    )
    host = GpuHostSnapshot(
        source="gpu-host-1", observed_at=time.time(), collector="c", interval_s=1.0, nvml_available=True, gpus=[reading]
    )
    for t in (0.0, 10.0):
        engines = [VllmEngineStats(model_name="qwen3-8b", prompt_tokens_total=0, generation_tokens_total=100 * t)]
        tracker.observe([host, vllm_snapshot(container_id=container_id, engines=engines)], t)
    return tracker


# VllmTargetDown alone, with ``for: 0s``: an alert on the first snapshot that is down.
FAST_RULES = """
rules:
  - alert: VllmTargetDown
    event: vllm.instance
    when: not up
    for: 0s
    severity: critical
    labels: {target: "{source}"}
    annotations: {summary: "vLLM target {source} is down", runbook_url: deploy/README.md#vllmtargetdown}
"""


def fresh_sources(body: str, since: float, domain: str = "vllm") -> int:
    """How many sources of ``domain`` on an aggregator's ``/metrics`` body were observed after ``since`` (Unix s)."""
    return sum(
        1
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == "inferwatch_source_last_seen_timestamp_seconds"
        and s.labels.get("domain") == domain
        and s.value > since
    )


def write_fast_rules(path: Path, *alerts: str) -> Path:
    """The shipped rules named ``alerts``, with ``for: 0s``, as a rules file at ``path`` (the aggregator's override)."""
    rules = [r for r in yaml.safe_load(DEFAULT_RULES_FILE.read_text())["rules"] if r["alert"] in alerts]
    for rule in rules:
        rule["for"] = "0s"
    path.write_text(yaml.safe_dump({"rules": rules}))
    return path


def burning_slos(now: float) -> SloEvaluator:
    """The shipped SLOs after two snapshots of qwen3-8b, 30 s apart, in which 10 of 1,000 requests failed (1 %: the
    vLLM availability SLO's whole budget)."""
    slos = SloEvaluator(load_slos(DEFAULT_SLO_FILE))
    for i, (stop, error) in enumerate([(1000, 0), (1990, 10)]):
        event = vllm_snapshot(observed_at=now - 60 + 30 * i)
        engine = msgspec.structs.replace(event.engines[0], request_success_total={"stop": stop, "error": error})
        slos.on_event(msgspec.structs.replace(event, engines=[engine]), now - 60 + 30 * i)
    return slos


CONTAINER_ID = "3f2a9c0d1e2b" + "0" * 52


def serving_snapshot(observed_at: float, requests: float) -> VllmInstanceSnapshot:
    """The vLLM instance of `populated_aggregator` after ``requests`` finished requests (90 % within 0.5 s)."""
    latency = Histogram(
        buckets=[(0.1, requests * 0.5), (0.5, requests * 0.9), (1.0, requests)], sum=requests * 0.2, count=requests
    )
    engine = VllmEngineStats(
        model_name="qwen3-8b", request_success_total={"stop": requests}, e2e_request_latency_seconds=latency
    )
    return vllm_snapshot(observed_at=observed_at, engines=[engine], container_id=CONTAINER_ID)


def populated_aggregator() -> SimpleNamespace:
    """`make_aggregator` plus what a running system adds: a vLLM instance serving qwen3-8b in a container on GPU 0
    of gpu-host-1, a LiteLLM proxy that times out, a Langfuse project, and a vLLM heartbeat (inferwatch's own)."""
    from inferwatch.contracts.gpu import GpuProcess, GpuReading
    from inferwatch.contracts.heartbeat import Heartbeat
    from inferwatch.contracts.langfuse import LangfuseProjectSnapshot
    from inferwatch.contracts.litellm import LitellmProxySnapshot

    aggregator = make_aggregator()
    now, wall = time.monotonic(), time.time()
    base = {"observed_at": wall, "collector": "c", "interval_s": 1.0}
    gpu = GpuReading(
        index=0,
        uuid="GPU-0",
        name="NVIDIA H100 80GB HBM3",
        utilization_ratio=0.71,
        memory_used_bytes=61 * 2**30,
        memory_total_bytes=80 * 2**30,
        temperature_celsius=64,
        processes=[GpuProcess(pid=7, used_memory_bytes=60 * 2**30, container_id=CONTAINER_ID[:12])],
    )
    for event in (
        serving_snapshot(wall, 100),
        GpuHostSnapshot(source="gpu-host-1", nvml_available=True, gpus=[gpu], driver_version="550.54", **base),
        LitellmProxySnapshot(source="http://litellm:4000", up=False, error="timeout", version="1.80.0", **base),
        LangfuseProjectSnapshot(source="prod", up=True, server_version="3.120.0", **base),
        Heartbeat(source="vllm-scraper@h:1", service="vllm-scraper", version="0", started_at=0, ready=True, **base),
    ):
        aggregator.table.apply(event, now)
    return aggregator

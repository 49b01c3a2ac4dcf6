"""Unit economics per model: known power, known GPU-hour price, known token rate in; hand-computed figures out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.gpu import GpuHostSnapshot, GpuProcess, GpuReading
from inferwatch.contracts.litellm import LitellmProxySnapshot, ModelRoute
from inferwatch.contracts.vllm import VllmEngineStats
from inferwatch.services.aggregator.domains.economics import render_economics
from inferwatch.services.aggregator.economics import (
    EconomicsFile,
    EconomicsTracker,
    GpuShare,
    Usage,
    attribute_gpus,
    instance_usage,
    load_economics,
    model_economics,
    unit_economics,
)
from inferwatch.services.aggregator.render import render_exposition
from inferwatch.services.aggregator.status_page import status_payload
from inferwatch.services.gpu_agent.app import snapshot as gpu_snapshot
from inferwatch.services.gpu_agent.config import GpuAgentConfig
from inferwatch.services.gpu_agent.core import container_id_from_cgroup
from inferwatch.services.gpu_agent.nvml import NvmlReader
from inferwatch.shared.settings import SettingsError
from inferwatch.simulators.nvml import DEMO_ECONOMICS_FILE, FakeNvml, container_id_for
from tests.support.aggregator import economics_tracker, make_aggregator, vllm_snapshot

H100 = "NVIDIA H100 80GB HBM3"
GIB = 1024**3
CONTAINER = "c" * 64


def gpu_host(*gpus: GpuReading, source: str = "gpu-host-1") -> GpuHostSnapshot:
    return GpuHostSnapshot(
        source=source, observed_at=time.time(), collector="t", interval_s=5.0, nvml_available=True, gpus=list(gpus)
    )


def gpu(index: int, power: float | None, *processes: tuple[str, float], name: str = H100) -> GpuReading:
    return GpuReading(
        index=index,
        uuid=f"GPU-{index}",
        name=name,
        power_draw_watts=power,
        processes=[GpuProcess(pid=100 + i, used_memory_bytes=m, container_id=c) for i, (c, m) in enumerate(processes)],
    )


def engine_at(
    t: float,
    *,
    model: str = "qwen3-8b",
    prompt_rate: float,
    output_rate: float,
    prefill: float = 0.0,
    decode: float = 0.0,
) -> VllmEngineStats:
    """An engine's counters after ``t`` seconds at constant token rates (and prefill/decode seconds per second)."""
    return VllmEngineStats(
        model_name=model,
        prompt_tokens_total=prompt_rate * t,
        generation_tokens_total=output_rate * t,
        request_prefill_time_seconds=Histogram(buckets=[], sum=prefill * t, count=t) if prefill else None,
        request_decode_time_seconds=Histogram(buckets=[], sum=decode * t, count=t) if decode else None,
    )


def run_ticks(tracker: EconomicsTracker, seconds: int, step: int, snapshots: object) -> None:
    """Tick at 0, step, … seconds; ``snapshots(t)`` gives the snapshots at time ``t``."""
    for t in range(0, seconds + 1, step):
        tracker.observe(snapshots(t), float(t))  # type: ignore[operator]


def test_one_gpu_known_power_price_and_token_rate_give_the_hand_computed_figures() -> None:
    # One H100 at 400 W for 100 s; 3.60 USD per GPU-hour (0.001 USD/s) and 0.36 USD per kWh.
    # Tokens: 1,500 input + 500 output per second -> 150,000 + 50,000 = 200,000 in 100 s.
    # Cost: GPU 100 s x 0.001 = 0.100 USD; energy 400 W x 100 s = 40,000 J = 0.0111 kWh x 0.36 = 0.004 USD.
    # Total 0.104 USD / 0.2 M tokens = 0.52 USD per million tokens; 40,000 J / 0.2 M = 200,000 J per million.
    # Prefill takes 0.25 of the timed seconds, decode 0.75: input 0.026 USD / 0.15 M = 0.17333 USD per million,
    # output 0.078 USD / 0.05 M = 1.56 USD per million.
    tracker = EconomicsTracker(EconomicsFile(gpu_hour_usd={H100: 3.60}, kwh_usd=0.36, tick_s=10))
    host = gpu_host(gpu(0, 400.0, (CONTAINER, 70 * GIB)))

    def at(t: float) -> list[object]:
        engine = engine_at(t, prompt_rate=1500, output_rate=500, prefill=2.5, decode=7.5)
        return [host, vllm_snapshot(container_id=CONTAINER, engines=[engine])]

    run_ticks(tracker, 100, 10, at)
    [fig] = tracker.figures()
    assert fig.model == "qwen3-8b"
    assert fig.span_s == 100
    assert fig.gpus == pytest.approx(1.0)
    assert fig.power_watts == pytest.approx(400.0)
    assert fig.tokens_per_gpu_second == pytest.approx({"input": 1500.0, "output": 500.0, "total": 2000.0})
    assert fig.energy_joules_per_million_tokens == pytest.approx(200_000.0)
    assert fig.cost_usd_per_million_tokens == pytest.approx({"total": 0.52, "input": 0.026 / 0.15, "output": 1.56})


def test_simulated_nvml_tensor_parallel_pair_known_power_and_price() -> None:
    """The demo's fake NVML: qwen3 on GPUs 0 and 1 (tensor parallel 2) at 300 W each, read through the gpu-agent."""
    fake = FakeNvml(gpus=4)
    for g in fake.gpus:
        g.power_mw = 300_000
    reader = NvmlReader(fake, container_of=lambda pid: container_id_from_cgroup(fake.cgroup_text(pid)))
    host = gpu_snapshot(reader, GpuAgentConfig(), "t")
    qwen = container_id_for("vllm-qwen3")
    # 2 GPUs x 60 s = 120 GPU-seconds at 2.00 USD per GPU-hour = 0.0666… USD, no energy price.
    # 1,000 output tokens per second, nothing else -> 60,000 tokens: 0.0666… / 0.06 M = 1.111… USD per million.
    # Energy 2 x 300 W x 60 s = 36,000 J / 0.06 M = 600,000 J per million; 500 output tokens per GPU-second.
    tracker = EconomicsTracker(EconomicsFile(gpu_hour_usd={H100: 2.00}, tick_s=5))

    def at(t: float) -> list[object]:
        return [host, vllm_snapshot(container_id=qwen, engines=[engine_at(t, prompt_rate=0, output_rate=1000)])]

    run_ticks(tracker, 60, 5, at)
    [fig] = tracker.figures()
    assert fig.gpus == pytest.approx(2.0)
    assert fig.power_watts == pytest.approx(600.0)
    assert fig.cost_usd_per_million_tokens == pytest.approx({"total": (120 / 3600 * 2.0) / 0.06})
    assert fig.cost_usd_per_million_tokens["total"] == pytest.approx(1.0 + 1 / 9)
    assert fig.energy_joules_per_million_tokens == pytest.approx(600_000.0)
    assert fig.tokens_per_gpu_second["output"] == pytest.approx(500.0)


def test_without_a_price_no_cost_but_energy_and_throughput() -> None:
    tracker = EconomicsTracker(EconomicsFile(tick_s=10))
    host = gpu_host(gpu(0, 250.0, (CONTAINER, GIB)))
    run_ticks(
        tracker,
        30,
        10,
        lambda t: [host, vllm_snapshot(container_id=CONTAINER, engines=[engine_at(t, prompt_rate=10, output_rate=10)])],
    )
    [fig] = tracker.figures()
    assert fig.cost_usd_per_million_tokens == {}
    assert fig.energy_joules_per_million_tokens == pytest.approx(250 * 30 / 600 * 1e6)
    body = render_exposition([render_economics([fig])]).decode()
    assert "inferwatch_model_self_hosted_cost_usd_per_million_tokens" not in body
    assert 'inferwatch_model_tokens_per_gpu_second{model_name="qwen3-8b",direction="total"} 20' in body


def test_shared_gpu_is_split_by_memory_and_host_processes_take_their_share() -> None:
    other = "d" * 64
    host = gpu_host(gpu(0, 400.0, (CONTAINER, 30 * GIB), (other, 10 * GIB), ("", 0.0)))
    shares = attribute_gpus([host], [CONTAINER, other[:12]])
    assert shares == {CONTAINER: [GpuShare(H100, 0.75, 400.0)], other[:12]: [GpuShare(H100, 0.25, 400.0)]}
    usage = instance_usage(shares[CONTAINER], 3600.0, {H100: 4.0})
    assert usage.gpu_seconds == pytest.approx(2700.0)
    assert usage.gpu_cost_usd == pytest.approx(3.0)
    assert usage.energy_joules == pytest.approx(0.75 * 400 * 3600)


def test_partly_priced_gpus_give_no_cost_and_a_kwh_price_alone_prices_energy() -> None:
    mixed = Usage(100, gpu_seconds=200, priced_gpu_seconds=100, gpu_cost_usd=0.1, energy_joules=3.6e6)
    mixed.generation_tokens = 1e6
    assert unit_economics("m", mixed, 0.0).cost_usd_per_million_tokens == {}
    energy_only = Usage(100, gpu_seconds=200, energy_joules=7.2e6, generation_tokens=1e6)
    assert unit_economics("m", energy_only, 0.25).cost_usd_per_million_tokens == pytest.approx({"total": 0.5})


def test_counter_resets_and_idle_time_are_counted() -> None:
    """A restarted vLLM's counters start again from zero; GPU time without tokens still costs."""
    tracker = EconomicsTracker(EconomicsFile(gpu_hour_usd={H100: 36.0}, tick_s=10))
    host = gpu_host(gpu(0, 100.0, (CONTAINER, GIB)))
    totals = [0, 1000, 2000, 500, 1500, 1500]  # restart after 20 s; idle for the last 10 s
    for i, total in enumerate(totals):
        engines = [VllmEngineStats(model_name="m", prompt_tokens_total=0, generation_tokens_total=total)]
        tracker.observe([host, vllm_snapshot(container_id=CONTAINER, engines=engines)], i * 10.0)
    [fig] = tracker.figures()
    # tokens: 1000 + 1000 + 500 + 1000 + 0 = 3500 over 50 s; cost 50 s x 0.01 USD/s = 0.5 USD
    assert fig.tokens_per_gpu_second["output"] == pytest.approx(3500 / 50)
    assert fig.cost_usd_per_million_tokens["total"] == pytest.approx(0.5 / 3500 * 1e6)


def test_window_drops_old_ticks_and_replicas_add_up() -> None:
    tracker = EconomicsTracker(EconomicsFile(gpu_hour_usd={H100: 3.6}, window_s=30, tick_s=10))
    a, b = "a" * 64, "b" * 64
    host = gpu_host(gpu(0, 100.0, (a, GIB)), gpu(1, 300.0, (b, GIB)))

    def at(t: float) -> list[object]:
        total = 100 * min(t, 50) + 300 * max(t - 50, 0)  # the last 30 s run three times faster
        engines = [VllmEngineStats(model_name="qwen3-8b", generation_tokens_total=total)]
        return [
            host,
            vllm_snapshot("http://a:8000", container_id=a, engines=engines),
            vllm_snapshot("http://b:8000", container_id=b, engines=engines),
        ]

    run_ticks(tracker, 80, 10, at)
    [fig] = tracker.figures()
    assert fig.span_s == 30
    assert fig.gpus == pytest.approx(2.0)
    assert fig.power_watts == pytest.approx(400.0)
    assert fig.tokens_per_gpu_second["output"] == pytest.approx(300.0)
    # both replicas gone: the model leaves the figures once its last tick has left the window
    for t in (90.0, 100.0):
        tracker.observe([host], t)
    assert [f.model for f in tracker.figures()] == ["qwen3-8b"]
    tracker.observe([host], 110.0)
    assert tracker.figures() == []


def test_an_instance_without_seen_gpus_adds_no_free_tokens() -> None:
    tracker = EconomicsTracker(EconomicsFile(gpu_hour_usd={H100: 3.6}, tick_s=10))
    host = gpu_host(gpu(0, 100.0, (CONTAINER, GIB)))

    def at(t: float) -> list[object]:
        engines = [engine_at(t, prompt_rate=0, output_rate=100)]
        return [
            host,
            vllm_snapshot("http://seen:8000", container_id=CONTAINER, engines=engines),
            vllm_snapshot("http://unseen:8000", container_id="e" * 64, engines=engines),
            vllm_snapshot("http://no-container:8000", engines=engines),
        ]

    run_ticks(tracker, 20, 10, at)
    [fig] = tracker.figures()
    assert fig.tokens_per_gpu_second["output"] == pytest.approx(100.0)
    assert fig.cost_usd_per_million_tokens["total"] == pytest.approx(0.02 / 2000 * 1e6)


def test_api_price_of_the_configured_route_beside_the_self_hosted_cost() -> None:
    proxy = LitellmProxySnapshot(
        source="litellm",
        observed_at=time.time(),
        collector="t",
        interval_s=5.0,
        up=True,
        routes=[
            ModelRoute(model_group="gpt-4o-mini", deployment_id="1", model_type="llm", input_cost_per_token=1.5e-7,
                       output_cost_per_token=6e-7),
            ModelRoute(model_group="gpt-4o-mini", deployment_id="2", model_type="llm", input_cost_per_token=2.5e-7,
                       output_cost_per_token=6e-7),
            ModelRoute(model_group="qwen3-8b", deployment_id="3", model_type="llm"),
        ],
    )  # fmt: skip
    tracker = EconomicsTracker(EconomicsFile(api_routes={"qwen3-8b": "gpt-4o-mini"}, tick_s=10))
    host = gpu_host(gpu(0, 100.0, (CONTAINER, GIB)))
    run_ticks(
        tracker,
        20,
        10,
        lambda t: [
            proxy,
            host,
            vllm_snapshot(container_id=CONTAINER, engines=[engine_at(t, prompt_rate=1, output_rate=1)]),
        ],
    )
    [fig] = tracker.figures()
    assert fig.api_route == "gpt-4o-mini"
    assert fig.api_usd_per_million_tokens == pytest.approx({"input": 0.2, "output": 0.6})
    families = {
        f.name: f for f in text_string_to_metric_families(render_exposition([render_economics([fig])]).decode())
    }
    [sample, _] = families["inferwatch_model_api_price_usd_per_million_tokens"].samples
    assert sample.labels == {"model_name": "qwen3-8b", "route": "gpt-4o-mini", "direction": "input"}


def test_status_payload_has_each_models_economics_lines() -> None:
    aggregator = make_aggregator()
    aggregator.economics = economics_tracker()
    (model,) = [m for m in status_payload(aggregator)["models"] if m["name"] == "qwen3-8b"]
    lines = dict(model["figures"])  # the economics are rows of the model card's figures
    # 10 s x 0.001 USD = 0.01 USD for 1,000 tokens: 10 USD per million; 3,600 J per 1,000 tokens: 1 kWh per million
    assert lines["self-hosted USD per million total tokens"] == "10.0000"
    assert lines["energy per million tokens"] == "1.000 kWh"
    assert lines["output tokens per GPU-second"] == "100.0"
    assert model_economics(None) == {}


def test_economics_file_is_checked(tmp_path: Path) -> None:
    assert load_economics("") == EconomicsFile()
    demo = load_economics(str(DEMO_ECONOMICS_FILE))
    assert demo.gpu_hour_usd[FakeNvml(gpus=1).gpus[0].name] > 0  # the demo prices its own fake GPUs
    bad = tmp_path / "e.yaml"
    for text in ("gpu_hour_usd: {H100: -1}\n", "gpu_hour: {H100: 1}\n", "window_s: 0\n", "kwh_usd: cheap\n"):
        bad.write_text(text)
        with pytest.raises(SettingsError):
            load_economics(str(bad))
    with pytest.raises(SettingsError):
        load_economics(str(tmp_path / "missing.yaml"))

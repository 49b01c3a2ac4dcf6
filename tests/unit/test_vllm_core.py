"""vllm-scraper's pure core: every vLLM generation read into one shape, sharding, DNS specs."""

from __future__ import annotations

from collections import Counter

import pytest

from inferwatch.contracts.vllm import VllmEngineStats
from inferwatch.services.vllm_scraper.core import (
    WANTED,
    detect_generation,
    engine_stats,
    model_status,
    parse_models,
    read_instance,
    rendezvous_owner,
    spread_offset,
)
from inferwatch.shared.dns import parse_dns_spec, target_url
from inferwatch.shared.exposition import parse_exposition
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration
from tests.support import FIXTURES


def stats_of(body: bytes) -> tuple[str, list[VllmEngineStats]]:
    families = parse_exposition(body, families=WANTED)
    return detect_generation(families), engine_stats(families)


def test_v0_fixture() -> None:
    generation, engines = stats_of((FIXTURES / "vllm-v0-metrics.txt").read_bytes())
    assert generation == "v0"
    assert len(engines) == 1
    e = engines[0]
    assert (e.model_name, e.engine) == ("llama-3.1-8b-instruct", "0")
    assert e.requests_running == 11.0
    assert e.requests_waiting == 0.0
    assert e.requests_swapped == 0.0
    assert e.kv_cache_usage_ratio == pytest.approx(0.27421)  # from gpu_cache_usage_perc
    assert e.preemptions_total == 7.0
    assert e.prompt_tokens_total == 2.730076e06
    assert e.generation_tokens_total == 640489.0
    assert e.request_success_total == {"length": 116.0, "stop": 1884.0}
    assert e.inter_token_latency_seconds is not None  # from time_per_output_token_seconds
    assert e.inter_token_latency_seconds.count == 638478.0
    assert e.time_to_first_token_seconds is not None
    assert e.time_to_first_token_seconds.count == 2011.0
    bounds = [le for le, _ in e.time_to_first_token_seconds.buckets]
    assert bounds == sorted(bounds)
    assert len(bounds) > 5
    counts = [c for _, c in e.time_to_first_token_seconds.buckets]
    assert counts == sorted(counts)
    assert counts[-1] <= e.time_to_first_token_seconds.count
    assert e.request_queue_time_seconds is None
    assert e.prefix_cache_queries_total is None


def test_v1_fixture() -> None:
    generation, engines = stats_of((FIXTURES / "vllm-v1-metrics.txt").read_bytes())
    assert generation == "v1"
    e = next(x for x in engines if x.engine == "0")
    assert e.model_name == "qwen3-8b"
    assert e.requests_running == 14.0
    assert e.kv_cache_usage_ratio == pytest.approx(0.1837)
    assert e.prefix_cache_queries_total == 9.826314e06
    assert e.prefix_cache_hits_total == 3.677776e06
    assert e.requests_swapped is None
    assert e.inter_token_latency_seconds is not None
    assert e.request_queue_time_seconds is not None
    assert e.request_decode_time_seconds is not None
    assert e.request_prefill_time_seconds is not None
    assert sum(e.request_success_total.values()) > 0


@pytest.mark.parametrize("generation", list(VllmGeneration))
def test_every_simulated_generation(generation: VllmGeneration) -> None:
    v1 = generation in (VllmGeneration.V1_10, VllmGeneration.V1)
    inst = SimulatedVllm("m", "org/m", generation, f"{generation.value}.0", engines=2 if v1 else 1, seed=5)
    inst.step(120.0)
    detected, engines = stats_of(inst.render_metrics())
    assert detected == ("v1" if v1 else "v0")
    assert {e.model_name for e in engines} == {"m"}
    if detected == "v1":
        assert sorted(e.engine for e in engines) == ["0", "1"]  # data-parallel engine label kept
    for e in engines:
        assert e.kv_cache_usage_ratio is not None
        assert 0.0 <= e.kv_cache_usage_ratio <= 1.0
        assert e.e2e_request_latency_seconds is not None
        assert e.generation_tokens_total is not None


def test_disabled_prefix_cache_minus_one_is_absent() -> None:
    body = (
        b"# TYPE vllm:gpu_prefix_cache_hit_rate gauge\n"
        b'vllm:gpu_prefix_cache_hit_rate{model_name="a"} -1.0\n'
        b'vllm:gpu_prefix_cache_hit_rate{model_name="b"} 0.25\n'
    )
    _, engines = stats_of(body)
    by_model = {e.model_name: e for e in engines}
    assert by_model["a"].prefix_cache_hit_ratio is None
    assert by_model["b"].prefix_cache_hit_ratio == 0.25


def test_several_models_and_nan() -> None:
    body = (
        b"# TYPE vllm:num_requests_running gauge\n"
        b'vllm:num_requests_running{engine="0",model_name="a"} 1\n'
        b'vllm:num_requests_running{engine="0",model_name="b"} NaN\n'
        b"# TYPE vllm:some_future_metric gauge\n"
        b'vllm:some_future_metric{engine="0",model_name="a"} 3\n'
    )
    generation, engines = stats_of(body)
    assert generation == "v1"
    assert [(e.model_name, e.requests_running) for e in engines] == [("a", 1.0), ("b", None)]


def test_models_parsing() -> None:
    cards = parse_models((FIXTURES / "vllm-v1-models.json").read_bytes())
    assert [(c.id, c.root, c.parent, c.max_model_len) for c in cards] == [("qwen3-8b", "Qwen/Qwen3-8B", "", 32768)]
    with pytest.raises(ValueError, match="no data list"):
        parse_models(b'{"object":"list"}')
    with pytest.raises(ValueError, match="invalid"):
        parse_models(b"\xff")


def test_read_instance_bounds_the_reading_and_names_the_first_error() -> None:
    body = (FIXTURES / "vllm-v1-metrics.txt").read_bytes()
    models = (FIXTURES / "vllm-v1-models.json").read_bytes()
    reading = read_instance(body, models, {"version": "0.11.0"}, max_engines=64, max_models=0)
    assert (reading.error, reading.generation, reading.version) == ("", "v1", "0.11.0")
    assert [e.model_name for e in reading.engines] == ["qwen3-8b"]
    assert reading.models == []
    assert reading.dropped == {"max_models": 1}

    broken = read_instance(
        b'vllm:num_requests_running{model_name="m"} abc\n', b"not json", "not a dict", max_engines=64, max_models=8
    )
    assert broken.error == "parse_error"  # the exposition's error wins over the models'
    assert broken.parse_detail
    assert (broken.engines, broken.version, broken.generation) == ([], "", "")
    assert read_instance(None, b"{}", None, max_engines=64, max_models=8).error == "invalid_models"


def test_model_status_transitions() -> None:
    assert model_status(reachable=True, health_ok=False, has_models=False, previous="loading") == "loading"
    assert model_status(reachable=True, health_ok=True, has_models=True, previous="loading") == "ready"
    assert model_status(reachable=True, health_ok=False, has_models=True, previous="ready") == "error"
    assert model_status(reachable=False, health_ok=False, has_models=False, previous="ready") == "error"


def test_rendezvous_moves_only_the_leavers_share() -> None:
    keys = [f"http://10.0.0.{i}:8000" for i in range(300)]
    three = ["r1", "r2", "r3"]
    before = {k: rendezvous_owner(k, three) for k in keys}
    shares = Counter(before.values())
    assert set(shares) == set(three)
    assert min(shares.values()) > 60
    after = {k: rendezvous_owner(k, ["r1", "r3"]) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved
    assert all(before[k] == "r2" for k in moved)
    assert all(after[k] in ("r1", "r3") for k in keys)
    assert rendezvous_owner("x", []) == ""
    assert rendezvous_owner("x", reversed(three)) == rendezvous_owner("x", three)


def test_spread_offset_is_stable_and_bounded() -> None:
    offsets = [spread_offset(f"t{i}", 15.0) for i in range(200)]
    assert all(0.0 <= o < 15.0 for o in offsets)
    assert spread_offset("t1", 15.0) == offsets[1]
    assert max(offsets) - min(offsets) > 10.0


def test_dns_specs() -> None:
    assert parse_dns_spec("vllm.internal:8000") == ("a", "vllm.internal", 8000)
    assert parse_dns_spec("[::1]:8000") == ("a", "::1", 8000)
    assert parse_dns_spec("_vllm._tcp.svc.cluster.local") == ("srv", "_vllm._tcp.svc.cluster.local", 0)
    assert parse_dns_spec("srv+vllm.example.com") == ("srv", "vllm.example.com", 0)
    for bad in ("nohost", "host:99999", ":80"):
        with pytest.raises(ValueError, match="expected host:port"):
            parse_dns_spec(bad)
    assert target_url("::1", 8000) == "http://[::1]:8000"

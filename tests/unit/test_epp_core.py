"""epp-scraper core: every EPP naming generation maps to the same stable shape (recorded expositions)."""

from __future__ import annotations

import pytest

from inferwatch.contracts.epp import (
    EppObjectiveStats,
    EppPluginStats,
    EppPoolStats,
    EppPrefixIndexerStats,
    EppSnapshot,
)
from inferwatch.contracts.metrics import MetricField, metric_fields
from inferwatch.services.aggregator.domains import all_renderers
from inferwatch.services.aggregator.render import render_exposition
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.epp_scraper.core import (
    WANTED,
    auth_failure_reason,
    detect_naming,
    objective_stats,
    plugin_stats,
    pool_stats,
    prefix_indexer_stats,
    scheduler_stats,
    snapshot_fields,
)
from inferwatch.shared.exposition import MetricFamily, parse_exposition
from tests import support

FIXTURES = support.FIXTURES / "epp"
NAMINGS = ("llm_d_epp", "llm_d_router_epp", "inference_objective", "inference_model")


def families(naming: str):  # type: ignore[no-untyped-def]
    return parse_exposition((FIXTURES / f"{naming}.txt").read_bytes(), families=WANTED)


@pytest.mark.parametrize("naming", NAMINGS)
def test_every_generation_gives_the_same_numbers(naming: str) -> None:
    fams = families(naming)
    assert detect_naming(fams) == naming
    objectives = {(o.model_name, o.target_model_name): o for o in objective_stats(fams)}
    qwen = objectives[("qwen3-8b", "qwen3-8b")]
    assert qwen.requests_total == 21.0
    assert qwen.request_errors_total == {"ModelServerError": 1.0}
    assert qwen.request_duration_seconds is not None
    assert qwen.request_duration_seconds.count == 21.0
    assert qwen.request_duration_seconds.sum == pytest.approx(21 * 0.8)
    assert qwen.request_duration_seconds.buckets[0] == (0.005, 3.0)
    assert qwen.request_input_tokens is not None
    assert qwen.request_input_tokens.count == 21.0
    assert qwen.request_output_tokens is not None
    assert qwen.running_requests == 3.0
    assert objectives[("llama", "llama-3.1-8b-instruct")].requests_total == 51.0
    pools = {p.pool: p for p in pool_stats(fams)}
    assert set(pools) == {"vllm-qwen3-pool", "vllm-llama-pool"}
    llama = pools["vllm-llama-pool"]
    assert llama.pool_ready_endpoints == len(llama.endpoint_queue_size)
    assert llama.pool_average_kv_cache_utilization_ratio is not None
    assert 0 <= llama.pool_average_kv_cache_utilization_ratio <= 1
    latency, attempts, flow = scheduler_stats(fams)
    assert latency is not None
    assert latency.count == 72.0
    if naming == "inference_model":  # GIE v0.2-v1.0 had no scheduler_attempts_total
        assert attempts == {}
    else:
        assert attempts == {"success": 72.0, "failure": 2.0}
    assert flow is None  # flow control is behind a feature gate, off by default


def test_current_epp_with_legacy_twins_is_not_counted_twice() -> None:
    fams = families("llm_d_epp")
    assert "inference_objective_request" in fams  # the twin is there ...
    [qwen] = [o for o in objective_stats(fams) if o.model_name == "qwen3-8b"]
    assert qwen.requests_total == 21.0  # ... and ignored
    endpoints = {e for p in pool_stats(fams) for e in p.endpoint_queue_size}
    assert all(e.endswith("-rank-0") for e in endpoints)  # the llm_d_epp per-endpoint names won


def test_legacy_per_pod_queue_uses_pod_names() -> None:
    endpoints = {e for p in pool_stats(families("inference_model")) for e in p.endpoint_queue_size}
    assert endpoints
    assert not any(e.endswith("-rank-0") for e in endpoints)


def test_guessed_names_are_not_epp_metrics() -> None:
    body = b"# TYPE epp_requests_total counter\nepp_requests_total 5\nepp_cache_hits_total 1\n"
    fams = parse_exposition(body, families=WANTED)
    assert detect_naming(fams) == ""
    assert objective_stats(fams) == []
    assert pool_stats(fams) == []


def test_auth_failure_reasons_say_what_to_fix() -> None:
    assert "TokenReview" in auth_failure_reason(401)
    assert "nonResourceURLs" in auth_failure_reason(403)
    assert "system:auth-delegator" in auth_failure_reason(500)
    assert auth_failure_reason(502) == "http_502"


# Labels the scraper sums over (each recorded exposition has one value of each) and how the others are renamed.
SUMMED_LABELS = frozenset({"fairness_id", "priority", "endpoint_name", "pod_name", "namespace", "port"})
RENAMED = {"name": "pool", "model_server_endpoint": "endpoint", "model_server_pod": "endpoint"}
SNAPSHOT_FIELDS = {m.field for m in metric_fields(EppSnapshot)}
DERIVED = {"prefix_indexer_hit_ratio_mean"}  # a quotient of another field, checked on its own below


def _expected(upstream: MetricFamily, m: MetricField) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The fixture's samples of one family as the aggregator should export them: (sample suffix, labels) → value."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for s in upstream.samples:
        suffix = s.name[len(upstream.name) :]
        if m.field in SNAPSHOT_FIELDS:  # unlabelled upstream but for the declared label
            labels = {k: v for k, v in s.labels.items() if k in (m.label, "le")}
        else:
            labels = {RENAMED.get(k, k): v for k, v in s.labels.items() if k not in SUMMED_LABELS}
        if "le" in labels:
            labels["le"] = repr(float(labels["le"]))
        group = (suffix, frozenset(labels.items()))
        out[group] = out.get(group, 0.0) + s.value
    return out


@pytest.mark.parametrize("naming", NAMINGS)
def test_recorded_values_reach_the_aggregator_unchanged(naming: str) -> None:
    """Every sample of every family the scraper reads comes out of the aggregator with the same value, under the
    newest name present (the llm_d_epp exposition also has every legacy twin: they would double the values)."""
    body = (FIXTURES / f"{naming}.txt").read_bytes()
    fams = families(naming)
    table = SourceTable(all_renderers())
    table.apply(
        EppSnapshot(source="epp", observed_at=0.0, collector="t", interval_s=5.0, up=True, **snapshot_fields(fams)),
        now=0.0,
    )
    exposed = parse_exposition(render_exposition(table.rendered()))
    every = parse_exposition(body)
    checked = 0
    read: set[str] = set()
    for struct in (EppObjectiveStats, EppPoolStats, EppPrefixIndexerStats, EppPluginStats, EppSnapshot):
        for m in metric_fields(struct):
            present = [every[name] for name in m.sources if name in every and every[name].samples]
            if not present or m.field in DERIVED:
                continue
            upstream = present[0]  # the newest generation present
            read.add(upstream.name)
            family = exposed["inferwatch_epp_" + m.family_name]
            actual = [(s.name[len(family.name) :], s.labels, s.value) for s in family.samples]
            for (suffix, labels), value in _expected(upstream, m).items():
                if suffix == "_created":
                    continue
                le = dict(labels).get("le")
                matches = [
                    v
                    for sfx, got, v in actual
                    if sfx == suffix
                    and {k: x for k, x in got.items() if k != "le"}.items() >= {(k, x) for k, x in labels if k != "le"}
                    and (le is None or repr(float(got["le"])) == le)
                ]
                assert matches == [value], (m.field, upstream.name, suffix, dict(labels))
                checked += 1
    assert checked > 200
    # every family of the exposition is read, but for the legacy twins of the families read
    twins = {name for name in every if name.startswith(("inference_objective_", "inference_pool_", "inference_ext"))}
    assert set(every) - read == (twins if naming == "llm_d_epp" else set())


def test_cache_aware_routing_from_the_current_epp() -> None:
    fams = families("llm_d_epp")
    [indexer] = prefix_indexer_stats(fams)  # the unlabelled inference_extension_ twin is not a second indexer
    assert (indexer.plugin_type, indexer.plugin_name) == ("prefix-cache-scorer", "prefix-cache-scorer")
    ratio = indexer.prefix_indexer_hit_ratio
    assert ratio is not None
    assert ratio.count == 21.0 + 51.0  # one observation per request of either model
    assert indexer.prefix_indexer_hit_ratio_mean == pytest.approx(ratio.sum / ratio.count)
    assert 0.5 < ratio.sum / ratio.count < 0.8  # the simulator's cache-aware routing hits about 65 %
    assert indexer.prefix_indexer_size is not None
    assert indexer.prefix_indexer_size > 0
    [qwen] = [o for o in objective_stats(fams) if o.model_name == "qwen3-8b"]
    assert set(qwen.request_ttft_seconds) == {"true", "false"}
    streamed = qwen.request_ttft_seconds["true"].count + qwen.request_ttft_seconds["false"].count
    assert streamed == qwen.requests_total
    assert qwen.request_streaming_itl_seconds is not None
    assert qwen.request_streaming_itl_seconds.count == qwen.request_ttft_seconds["true"].count
    assert qwen.request_cached_tokens is not None
    assert qwen.request_cached_tokens.count == qwen.requests_total
    points = {(p.extension_point, p.plugin_name) for p in plugin_stats(fams)}
    assert ("Scorer", "prefix-cache-scorer") in points


def test_gie_prefix_indexer_is_one_unlabelled_indexer() -> None:
    for naming in ("inference_objective", "inference_model"):
        [indexer] = prefix_indexer_stats(families(naming))
        assert (indexer.plugin_type, indexer.plugin_name) == ("", "")
        assert indexer.prefix_indexer_hit_ratio is not None
    [qwen] = [o for o in objective_stats(families("inference_model")) if o.model_name == "qwen3-8b"]
    assert qwen.request_cached_tokens is None  # GIE v1.2 added prompt_cached_tokens
    assert qwen.request_ntpot_seconds is not None
    assert qwen.request_ttft_seconds == {}  # the GIE never had TTFT

"""epp-scraper core: every EPP naming generation maps to the same stable shape (recorded expositions)."""

from __future__ import annotations

import pytest

from inferwatch.services.epp_scraper.core import (
    WANTED,
    auth_failure_reason,
    detect_naming,
    objective_stats,
    pool_stats,
    scheduler_stats,
)
from inferwatch.shared.exposition import parse_exposition
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

"""Regressions from fuzzing (bench/fuzz): decoders raise only their own errors on any input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.services.vllm_scraper.core import engine_stats, parse_models
from inferwatch.shared.exposition import ExpositionError, parse_exposition
from tests.support import FIXTURES

V1 = (FIXTURES / "vllm-v1-metrics.txt").read_bytes()


def test_broken_bucket_bound_is_skipped_not_fatal() -> None:
    # found by atheris: a histogram bucket whose `le` is not a number crashed the mapping
    body = (
        b"# TYPE vllm:time_to_first_token_seconds histogram\n"
        b'vllm:time_to_first_token_seconds_bucket{le="2.-",model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="m"} 1\n'
        b'vllm:time_to_first_token_seconds_count{model_name="m"} 3\n'
        b'vllm:time_to_first_token_seconds_sum{model_name="m"} 1.5\n'
    )
    [stats] = engine_stats(parse_exposition(body))
    assert stats.time_to_first_token_seconds is not None
    assert stats.time_to_first_token_seconds.buckets == [(0.5, 1.0)]
    assert stats.time_to_first_token_seconds.count == 3


def test_models_with_odd_fields() -> None:
    cards = parse_models(b'{"data":[{"id":"a","max_model_len":"lots"},{"id":"b","max_model_len":[1]},{"x":1}]}')
    assert [(c.id, c.max_model_len) for c in cards] == [("a", 0), ("b", 0)]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(V1) - 1), st.integers(1, 64), st.binary(max_size=16))
def test_mutated_exposition_maps_or_raises_exposition_error(pos: int, length: int, junk: bytes) -> None:
    mutated = V1[:pos] + junk + V1[pos + length :]
    try:
        families = parse_exposition(mutated)
    except ExpositionError:
        return
    engine_stats(families)

"""Pure langfuse-ingester logic on the reference fixtures: parsing, sentinels, accounting, the ledger."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from inferwatch.contracts.langfuse import LangfuseProjectSnapshot, SessionLengths
from inferwatch.services.aggregator.domains import all_renderers
from inferwatch.services.aggregator.render import render_exposition
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig
from inferwatch.services.langfuse_ingester.core import (
    OBS_V1,
    OBS_V2,
    SCORES_V1,
    SCORES_V2,
    SCORES_V3,
    SESSION_SAMPLE,
    TRACES,
    BadRowError,
    BucketRows,
    Ledger,
    ObservationRow,
    Segmentation,
    TraceRow,
    bucket_contribution,
    distinct_sketch,
    fallback,
    histogram_quantile,
    initial_plan,
    key,
    number,
    observation_level,
    observation_type,
    parse_major,
    parse_observation,
    parse_score,
    parse_time,
    parse_trace,
    plan_cycle,
    reduce_details,
    sketch_count,
    snapshot_parts,
)
from inferwatch.shared.exposition import parse_exposition
from inferwatch.shared.settings import Env, SettingsError
from tests import support

FIXTURES = support.FIXTURES / "langfuse"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_version_detection_from_health_fixtures() -> None:
    assert parse_major(load("health.json")["version"]) == 4
    assert parse_major(load("health-v3.json")["version"]) == 3
    assert parse_major("v2.95.12") == 2
    assert parse_major("garbage") == 0


def test_endpoint_plans_and_404_fallbacks() -> None:
    v4 = initial_plan(4)
    assert (v4.traces, v4.observations, v4.scores) == ("", OBS_V2, SCORES_V3)
    v3 = initial_plan(3)
    assert (v3.traces, v3.observations, v3.scores) == (TRACES, OBS_V1, SCORES_V2)
    # a v4 server in legacy write mode answers 404 on /v2/observations: back to traces + v1 observations
    legacy = fallback(v4, OBS_V2)
    assert legacy is not None
    assert (legacy.traces, legacy.observations) == (TRACES, OBS_V1)
    # a "v3" that is really events_only: /traces 404 → events-native endpoints
    events_only = fallback(v3, TRACES)
    assert events_only is not None
    assert (events_only.traces, events_only.observations, events_only.scores) == ("", OBS_V2, SCORES_V3)
    # scores: v3 → v2 → v1 → nothing
    step = fallback(v4, SCORES_V3)
    assert step is not None
    assert step.scores == SCORES_V2
    step = fallback(step, SCORES_V2)
    assert step is not None
    assert step.scores == SCORES_V1
    assert fallback(step, SCORES_V1) is None


def test_numbers_arrive_as_strings_and_junk_is_none() -> None:
    row = load("metrics-v1-traces-by-user.json")["data"][0]
    assert number(row["count_count"]) == 37.0
    assert number(row["sum_totalTokens"]) == 61204.0
    assert number("0.000003") == pytest.approx(3e-6)
    assert number("0.") == 0.0
    assert number(None) is None
    assert number(True) is None
    assert number("x") is None
    assert number("nan") is None


def test_usage_details_reduction_does_not_double_count_total() -> None:
    obs = load("observations-v2-page1.json")["data"][0]
    inp, out, total = reduce_details(obs["usageDetails"])
    assert (inp, out, total) == (1180 + 256, 412, 1848)
    assert inp == obs["inputUsage"]
    assert out == obs["outputUsage"]
    assert total == obs["totalUsage"]
    assert sum(obs["usageDetails"].values()) != total  # naive summing would double count
    c_in, _c_out, c_total = reduce_details(obs["costDetails"])
    assert c_in == pytest.approx(obs["inputCost"])
    assert c_total == pytest.approx(obs["totalCost"])


def test_observation_v1_and_v2_fixtures_agree() -> None:
    v1 = {o.id: o for o in map(parse_observation, load("observations.json")["data"])}
    v2 = {
        o.id: o
        for o in map(
            parse_observation, load("observations-v2-page1.json")["data"] + load("observations-v2-page2.json")["data"]
        )
    }
    assert v1.keys() == v2.keys()
    for oid, a in v1.items():
        b = v2[oid]
        assert (a.model, a.level, a.input_tokens, a.output_tokens, a.total_tokens) == (
            b.model,
            b.level,
            b.input_tokens,
            b.output_tokens,
            b.total_tokens,
        )
        assert a.cost_usd == pytest.approx(b.cost_usd)
        assert a.latency_s == pytest.approx(b.latency_s)
    trace = parse_trace(load("traces-page1.json")["data"][0])
    assert sum(o.cost_usd for o in v1.values()) == pytest.approx(load("traces-page1.json")["data"][0]["totalCost"])
    assert trace.latency_s == pytest.approx(3.287)  # seconds, first start → last end
    assert [o.level for o in v1.values()].count("ERROR") == 1
    assert v2["00f067aa0ba902b7"].is_root
    assert not v2["53995c3f42cd8ad8"].is_root


def test_trace_sentinels_are_not_values() -> None:
    core = parse_trace(load("traces-fields-core.json")["data"][0])
    assert core.latency_s is None  # latency: -1 (fields=core) is "not computed", not -1 s
    late = parse_trace(load("traces-page2.json")["data"][0])
    assert late.latency_s == 0.0
    assert late.user_id == ""
    obs = parse_observation(
        {
            "id": "x",
            "startTime": "2026-08-20T14:00:00Z",
            "totalCost": -1,
            "latency": -1,
            "costDetails": {"total": "0.5"},
        }
    )
    assert obs.cost_usd == 0.5
    assert obs.latency_s is None


def test_bad_rows_raise_a_labelled_error() -> None:
    with pytest.raises(BadRowError) as info:
        parse_trace({"timestamp": "2026-08-20T14:00:00Z"})
    assert info.value.reason == "trace_without_id"
    with pytest.raises(BadRowError) as info:
        parse_observation({"id": "a", "startTime": "yesterday"})
    assert info.value.reason == "observation_bad_start_time"
    with pytest.raises(BadRowError) as info:
        parse_score({"id": "a", "timestamp": "2026-08-20T14:00:00Z", "dataType": "TEXT", "value": None})
    assert info.value.reason == "score_unknown_type"


def test_scores_of_every_shape() -> None:
    v3 = {s.name: s for s in map(parse_score, load("scores-v3.json")["data"])}
    assert v3["session_resolved"].value == 0.0
    assert v3["user_feedback"].value == 1.0
    assert v3["sentiment"].category == "negative"
    v2 = {s.name: s for s in map(parse_score, load("scores-v2.json")["data"])}
    assert v2["helpfulness"].value == 0.82
    assert v2["sentiment"].category == "negative"
    assert v2["user_feedback"].value == 1.0
    old = {s.name: s for s in map(parse_score, load("scores-langfuse-v2.json")["data"])}
    assert old["sentiment"].category == "negative"
    assert old["sentiment"].value is None
    null_cat = parse_score(
        {"id": "n", "timestamp": "2026-08-20T14:00:00Z", "dataType": "CATEGORICAL", "value": None, "stringValue": None}
    )
    assert null_cat.category is None
    session = parse_score(load("scores-v2-session-score-trace-null.json")["data"][0])
    assert session.value == 0.0


def fixture_contribution(tracked: list[str], top_n: int = 5) -> dict[str, Any]:
    traces = [parse_trace(t) for t in load("traces-page1.json")["data"] + load("traces-page2.json")["data"]]
    obs = [parse_observation(o) for o in load("observations.json")["data"]]
    scores = [parse_score(s) for s in load("scores-v2.json")["data"]]
    scores.append(
        parse_score(
            {
                "id": "null1",
                "timestamp": "2026-08-20T14:30:00Z",
                "name": "sentiment",
                "dataType": "CATEGORICAL",
                "value": 0,
                "stringValue": None,
            }
        )
    )
    start = parse_time("2026-08-20T13:00:00Z")
    assert start is not None
    rows = BucketRows(
        traces=traces,
        observations=obs,
        scores=scores + scores,  # duplicates by id are ignored
        bad_rows={"score_unknown_type": 2},
    )
    return bucket_contribution(
        start,
        start + 10800,
        rows,
        tracked_users=tracked,
        top_n_users=top_n,
        segmentation=Segmentation(metadata_key="tenant"),
    )


def test_bucket_contribution_from_fixtures() -> None:
    tracked: list[str] = []
    c = fixture_contribution(tracked)
    counters = c["counters"]
    assert tracked == ["user-1842", "user-0007"]
    assert counters[key("usage", "", "user-1842", "acme", "traces")] == 1
    assert counters[key("usage", "", "", "", "traces")] == 1  # the trace without user
    gen = ("usage", "gpt-4o-2024-08-06", "user-1842", "acme")
    assert counters[key(*gen, "total_tokens")] == 1848
    assert counters[key(*gen, "input_tokens")] == 1436
    assert counters[key(*gen, "cost_usd")] == pytest.approx(0.00739)
    assert counters[key("usage", "gpt-4o-mini", "user-1842", "acme", "errors")] == 1
    assert counters[key("score", "helpfulness", "NUMERIC", "sum")] == pytest.approx(0.82)
    assert counters[key("score", "user_feedback", "BOOLEAN", "count")] == 1
    assert counters[key("score_cat", "sentiment", "negative")] == 1
    assert counters[key("score", "sentiment", "CATEGORICAL", "nulls")] == 1
    assert counters[key("score_bucket", "helpfulness", "0.9")] == 1
    assert counters[key("bad", "score_unknown_type")] == 2
    assert counters[key("activity", "3", "14")] == 1  # 2026-08-20 is a Thursday
    assert c["users"] == distinct_sketch(["user-0007", "user-1842"])  # hashes, not raw ids
    assert len(c["users"]) == 2
    assert c["sessions"] == distinct_sketch(["sess-7f1c2a"])


def test_top_n_users_fold_into_other_and_stay_sticky() -> None:
    tracked: list[str] = []
    c = fixture_contribution(tracked, top_n=1)
    assert tracked == ["user-1842"]
    assert c["counters"][key("usage", "", "other", "globex", "traces")] == 1
    again: list[str] = ["user-0007"]
    fixture_contribution(again, top_n=1)
    assert again == ["user-0007"]  # membership never changes once given


def test_ledger_replaces_rechecked_buckets_and_totals_are_exact() -> None:
    ledger = Ledger()
    ledger.put({"start": 0.0, "counters": {"a": 1.0}, "users": [1], "sessions": [], "latency": {}})
    ledger.put({"start": 60.0, "counters": {"a": 2.0}, "users": [2], "sessions": [], "latency": {}})
    ledger.put({"start": 60.0, "counters": {"a": 5.0}, "users": [2, 3], "sessions": [], "latency": {}})  # re-read
    assert ledger.totals() == {"a": 6.0}
    ledger.fold_before(60.0)
    assert ledger.base == {"a": 1.0}
    assert list(ledger.recent) == ["60"]
    assert ledger.totals() == {"a": 6.0}
    restored = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
    assert restored.totals() == ledger.totals()
    assert restored.window_distinct() == (2.0, 0.0)
    with pytest.raises(ValueError, match="version"):
        Ledger.from_json({"v": 99})


def test_plan_cycle_settles_rechecks_and_respects_retention() -> None:
    ledger = Ledger()
    now = 10_000.0
    plan = plan_cycle(
        ledger, now, bucket_s=100, settle_s=900, recheck_s=300, backfill_s=500, retention_days=0, max_new=100
    )
    assert plan.new == [8600.0, 8700.0, 8800.0, 8900.0, 9000.0]  # closed edge = floor((10000-900)/100)*100
    ledger.watermark = 9100.0
    for b in (8600.0, 8800.0, 8900.0, 9000.0):
        ledger.recent[str(int(b))] = {"start": b, "counters": {}}
    plan = plan_cycle(
        ledger, now + 250, bucket_s=100, settle_s=900, recheck_s=300, backfill_s=500, retention_days=0, max_new=100
    )
    assert plan.new == [9100.0, 9200.0]
    assert plan.recheck == [9000.0]
    # retention of 1 day on a first run never reaches beyond it
    day = 86400.0
    plan = plan_cycle(
        Ledger(), 10 * day, bucket_s=3600, settle_s=0, recheck_s=0, backfill_s=30 * day, retention_days=2, max_new=1000
    )
    assert plan.new[0] >= 9 * day
    assert plan.new[-1] + 3600 <= 10 * day


def exact_quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of raw values: the reference the histogram estimate is checked against."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_quantiles_from_histogram_track_exact_ones() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(0, 0.8) for _ in range(5000)]
    c = bucket_contribution(0, 10, BucketRows(), tracked_users=[], top_n_users=1)
    assert c["latency"] == {}
    from inferwatch.services.langfuse_ingester.core import LATENCY_BOUNDS_S, _histogram_index

    counts = [0.0] * (len(LATENCY_BOUNDS_S) + 2)
    for v in values:
        counts[_histogram_index(v, LATENCY_BOUNDS_S)] += 1
    for q in (0.5, 0.9, 0.99):
        approx, exact = histogram_quantile(counts, q), exact_quantile(values, q)
        assert approx is not None
        assert abs(approx - exact) / exact < 0.25
    assert histogram_quantile([0.0] * len(counts), 0.5) is None


def test_snapshot_parts_from_fixture_ledger() -> None:
    ledger = Ledger()
    ledger.put(fixture_contribution(ledger.tracked_users))
    parts = snapshot_parts(ledger)
    assert parts.unique_users == 2
    assert parts.unique_sessions == 1
    assert parts.scores[("sentiment", "CATEGORICAL")]["categories"] == {"negative": 1.0}
    assert parts.scores[("helpfulness", "NUMERIC")]["distribution"] == {"0.9": 1.0}
    assert parts.bad_rows == {"score_unknown_type": 2.0}
    p50, p90, p99 = parts.latency[("gpt-4o-2024-08-06", "chat-completion")]
    assert 2.0 <= p50 <= p90 <= p99 <= 3.0  # one generation of 2.54 s
    assert ("", "chat-completion") in parts.latency
    assert ("", "embed-docs") in parts.latency


def test_config_from_env_and_file(tmp_path: Path) -> None:
    secret = tmp_path / "sk"
    secret.write_text("sk-lf-file\n")
    toml = tmp_path / "lf.toml"
    toml.write_text(
        f'[[langfuse]]\nproject = "b"\nurl = "http://h:3000/"\npublic_key = "pk-b"\nsecret_key_file = "{secret}"\n'
    )
    config = LangfuseIngesterConfig.from_env(
        Env(
            {
                "INFERWATCH_LANGFUSE_URL": "http://lf:3000",
                "INFERWATCH_LANGFUSE_PUBLIC_KEY": "pk-a",
                "INFERWATCH_LANGFUSE_SECRET_KEY_FILE": str(secret),
                "INFERWATCH_LANGFUSE_PROJECT": "a",
                "INFERWATCH_CONFIG": str(toml),
            }
        )
    )
    assert [p.label for p in config.projects] == ["a", "b"]
    assert config.projects[1].url == "http://h:3000"
    assert config.projects[1].secret_key is not None
    assert config.projects[0].secret_key is not None
    assert config.projects[0].secret_key.reveal() == "sk-lf-file"
    assert "sk-lf-file" not in repr(config)
    assert config.settle_s == 900
    assert config.mode == "api"
    with pytest.raises(SettingsError, match="MODE"):
        LangfuseIngesterConfig.from_env(Env({"INFERWATCH_LANGFUSE_MODE": "magic"}))
    assert LangfuseIngesterConfig.from_env(Env({})).projects == ()
    assert LangfuseIngesterConfig.from_env(Env({})).max_trace_names == 100
    assert LangfuseIngesterConfig.from_env(Env({"INFERWATCH_LANGFUSE_MAX_TRACE_NAMES": "7"})).max_trace_names == 7


def test_distinct_sketch_is_exact_when_small_and_close_when_large() -> None:
    small = [f"user-{i}" for i in range(500)]
    assert sketch_count(set(distinct_sketch(small))) == 500
    buckets = [distinct_sketch(f"user-{i}" for i in range(b * 4000, b * 4000 + 6000)) for b in range(10)]
    assert all(len(b) == 2000 for b in buckets)  # bounded per bucket
    union: set[int] = set()
    for b in buckets:
        union.update(b)
    truth = 9 * 4000 + 6000
    assert abs(sketch_count(union) - truth) / truth < 0.1


def test_observation_types_levels_trace_names_and_sessions_from_fixtures() -> None:
    counters = fixture_contribution([])["counters"]
    types = {k: v for k, v in counters.items() if k.startswith("obs_type")}
    levels = {k: v for k, v in counters.items() if k.startswith("obs_level")}
    observations = sum(v for k, v in counters.items() if k.startswith("usage") and k.endswith("observations"))
    assert sum(types.values()) == sum(levels.values()) == observations  # every observation once in each
    assert counters[key("obs_type", "GENERATION")] >= 1
    assert counters[key("obs_type", "SPAN")] >= 1
    assert counters[key("obs_level", "ERROR")] == sum(
        v for k, v in counters.items() if k.startswith("usage") and k.endswith("errors")
    )
    traces = sum(v for k, v in counters.items() if k.startswith("usage") and k.endswith("traces"))
    assert sum(v for k, v in counters.items() if k.startswith("trace_name")) == traces
    assert counters[key("trace_name", "chat-completion")] >= 1
    assert counters[key("session_traces")] >= 1


def test_unknown_types_and_levels_are_other() -> None:
    assert (observation_type("tool"), observation_type("GUARDRAIL")) == ("TOOL", "GUARDRAIL")
    assert observation_type("RERANKER") == observation_type("") == "other"
    assert (observation_level("warning"), observation_level("LOUD")) == ("WARNING", "other")


def _trace(i: int, name: str, session: str = "", ts: float = 10.0, latency: float | None = None) -> TraceRow:
    return TraceRow(id=f"t{i}", timestamp=ts, name=name, user_id="", session_id=session, latency_s=latency)


def _obs(i: int, kind: str, level: str, model: str = "", latency: float | None = 1.0) -> ObservationRow:
    return ObservationRow(
        id=f"o{i}",
        trace_id=f"t{i}",
        start_time=10.0,
        type=kind,
        model=model,
        level=level,
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        cost_usd=0,
        latency_s=latency,
        is_root=False,
    )


def test_trace_names_are_capped_sticky_and_the_overflow_counted() -> None:
    names: list[str] = []
    rows = BucketRows(
        traces=[_trace(0, "a", latency=1.0), _trace(1, "a"), _trace(2, "b"), _trace(3, "c", latency=2.0)],
        observations=[_obs(0, "TOOL", "WARNING"), _obs(1, "AGENT", "DEBUG"), _obs(2, "NEWKIND", "DEFAULT", "m")],
    )
    c = bucket_contribution(
        0.0, 60.0, rows, tracked_users=[], top_n_users=5, tracked_trace_names=names, max_trace_names=2
    )
    assert names == ["a", "b"]  # most traces first, then by name
    counters = c["counters"]
    assert {k: v for k, v in counters.items() if k.startswith("trace_name")} == {
        key("trace_name", "a"): 2.0,
        key("trace_name", "b"): 1.0,
        key("trace_name", "other"): 1.0,  # the overflow, counted
    }
    assert {k for k in c["latency"] if k.startswith(key("", ""))} >= {key("", "a"), key("", "other")}
    assert counters[key("obs_type", "TOOL")] == counters[key("obs_type", "AGENT")] == 1
    assert counters[key("obs_type", "other")] == 1
    assert counters[key("obs_level", "WARNING")] == counters[key("obs_level", "DEBUG")] == 1
    later = BucketRows(traces=[_trace(4, "c", ts=70.0), _trace(5, "d", ts=70.0)])
    c2 = bucket_contribution(
        60.0, 120.0, later, tracked_users=[], top_n_users=5, tracked_trace_names=names, max_trace_names=2
    )
    assert names == ["a", "b"]  # full: membership never changes
    assert c2["counters"][key("trace_name", "other")] == 2.0


def test_session_lengths_over_the_window_and_exact_across_a_restart() -> None:
    ledger = Ledger()
    first = BucketRows(
        traces=[_trace(0, "n", "s1", ts=10.0, latency=5.0), _trace(1, "n", "s2", ts=20.0), _trace(2, "n")]
    )
    second = BucketRows(traces=[_trace(3, "n", "s1", ts=100.0, latency=20.0)])
    for start, rows in ((0.0, first), (60.0, second)):
        ledger.put(
            bucket_contribution(
                start,
                start + 60.0,
                rows,
                tracked_users=ledger.tracked_users,
                top_n_users=5,
                tracked_trace_names=ledger.tracked_trace_names,
            )
        )
    restored = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))  # what a restart reads back
    assert restored.tracked_trace_names == ["n"]
    for each in (ledger, restored):
        parts = snapshot_parts(each)
        assert parts.session_traces == 3.0  # trace 2 has no session
        assert parts.trace_names == {"n": 4.0}
        assert parts.session_lengths is not None
        sessions, traces, durations = parts.session_lengths
        assert sessions == 2.0
        assert traces == (1.0, 2.0, 2.0)  # s2: one trace; s1: two, in two buckets
        assert durations == (0.0, 110.0, 110.0)  # s1: 10 s → 100 s + 20 s
    old = ledger.to_json()
    del old["tracked_trace_names"]  # a ledger saved before trace names were kept
    assert Ledger.from_json(old).tracked_trace_names == []


def test_new_families_reach_the_aggregator_unchanged() -> None:
    snap = LangfuseProjectSnapshot(
        source="p",
        observed_at=0.0,
        collector="t",
        interval_s=60.0,
        up=True,
        observations_by_type_total={"SPAN": 4.0, "TOOL": 2.0, "other": 1.0},
        observations_by_level_total={"WARNING": 3.0, "DEFAULT": 4.0},
        traces_by_name_total={"chat": 5.0, "other": 2.0},
        session_traces_total=6.0,
        session_lengths=SessionLengths(
            sessions=3,
            traces_p50=2,
            traces_p90=4,
            traces_p99=4,
            duration_p50_s=30,
            duration_p90_s=95.5,
            duration_p99_s=95.5,
        ),
    )
    table = SourceTable(all_renderers())
    table.apply(snap, now=0.0)
    fams = parse_exposition(render_exposition(table.rendered()))

    def values(family: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in fams["inferwatch_langfuse_" + family].samples}

    assert values("observations_by_type", "type") == snap.observations_by_type_total
    assert values("observations_by_level", "level") == snap.observations_by_level_total
    assert values("traces_by_name", "trace_name") == snap.traces_by_name_total
    assert [s.value for s in fams["inferwatch_langfuse_session_traces"].samples] == [6.0]
    assert values("window_session_traces", "quantile") == {"0.5": 2.0, "0.9": 4.0, "0.99": 4.0}
    assert values("window_session_duration_seconds", "quantile") == {"0.5": 30.0, "0.9": 95.5, "0.99": 95.5}


def test_session_spans_stay_bounded_in_a_busy_window() -> None:
    ledger = Ledger()
    for b in range(12):  # an hour of 5-minute buckets, 3000 sessions each
        rows = BucketRows(traces=[_trace(b * 10_000 + i, "n", f"s{b}-{i}", ts=b * 300.0 + i / 10) for i in range(3000)])
        ledger.put(bucket_contribution(b * 300.0, b * 300.0 + 300.0, rows, tracked_users=[], top_n_users=5))
    assert all(len(c["session_spans"]) == SESSION_SAMPLE for c in ledger.recent.values())
    assert len(ledger.window_sessions()) == SESSION_SAMPLE
    sessions, traces, _ = snapshot_parts(ledger).session_lengths or (0.0, (0.0,) * 3, (0.0,) * 3)
    assert (sessions, traces) == (SESSION_SAMPLE, (1.0, 1.0, 1.0))
    spans_bytes = len(json.dumps([c["session_spans"] for c in ledger.recent.values()], separators=(",", ":")))
    assert spans_bytes < 200_000  # the ledger is one NATS key-value put (1 MB limit)

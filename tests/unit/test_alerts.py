"""The alert rule engine: parsing/validation, firing/resolved with `for`, dedup, increase(), silent sources."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot
from inferwatch.services.aggregator.alert_dispatch import AlertingConfig, alertmanager_payload
from inferwatch.services.aggregator.rule_engine import (
    DEFAULT_RULES_FILE,
    AlertEngine,
    RuleError,
    Scope,
    fingerprint,
    histogram_growth,
    histogram_quantile,
    load_rules,
    parse_duration,
    parse_rule,
)

T0 = 1_800_000_000.0


def vllm(
    source: str = "http://vllm-a:8000",
    *,
    up: bool = True,
    status: str = "ready",
    engines: list[VllmEngineStats] | None = None,
    at: float = T0,
) -> VllmInstanceSnapshot:
    return VllmInstanceSnapshot(
        source=source,
        observed_at=at,
        collector="vllm-scraper@t",
        interval_s=5.0,
        up=up,
        error="" if up else "timeout",
        status=status,
        container_name="vllm-a",
        engines=engines or [],
    )


def engine_stats(model: str = "qwen", **kw: object) -> VllmEngineStats:
    return VllmEngineStats(model_name=model, **kw)  # type: ignore[arg-type]


def defaults(expiry_intervals: float = math.inf) -> AlertEngine:
    """The shipped rules; sources never expire unless the test is about expiry."""
    return AlertEngine(load_rules(DEFAULT_RULES_FILE), expiry_intervals=expiry_intervals)


def test_default_rules_load_and_cover_the_issue_list() -> None:
    names = {r.name for r in load_rules(DEFAULT_RULES_FILE)}
    assert names == {
        "VllmTargetDown",
        "VllmModelStuckLoading",
        "VllmKvCacheSaturated",
        "VllmQueueBacklog",
        "VllmPreemptions",
        "VllmTtftHigh",
        "LitellmProxyDown",
        "LitellmDeploymentUnhealthy",
        "LitellmFallbacks",
        "LitellmErrorRateHigh",
        "LitellmSpendRateHigh",
        "LangfuseErrorRateHigh",
        "LangfuseLatencyHigh",
        "LangfuseScoreDropping",
        "GpuTemperatureHigh",
        "GpuMemoryNearFull",
        "GpuThrottling",
        "EppNoReadyPods",
        "EppLatencyHigh",
        "EppCacheHitRateLow",
        "EppTtftHigh",
        "CollectorHeartbeatMissing",
    }
    for rule in load_rules(DEFAULT_RULES_FILE):
        assert rule.annotations["runbook_url"].endswith("#" + rule.name.lower())


def test_target_down_respects_for_and_resolves() -> None:
    eng = defaults()
    assert eng.on_event(vllm(up=False), T0) == []  # pending: for 30s
    assert eng.tick(T0 + 10) == []
    fired = eng.tick(T0 + 31)
    assert [(a.name, a.state) for a in fired] == [("VllmTargetDown", "firing")]
    alert = fired[0]
    assert alert.labels == {
        "alertname": "VllmTargetDown",
        "severity": "critical",
        "target": "http://vllm-a:8000",
        "container": "vllm-a",
    }
    assert alert.annotations["description"] == "The last scrape of http://vllm-a:8000 failed: timeout"
    assert alert.source == fingerprint("VllmTargetDown", alert.labels)
    # still down: no duplicate
    assert eng.on_event(vllm(up=False), T0 + 35) == []
    assert [a.name for a in eng.firing()] == ["VllmTargetDown"]
    resolved = eng.on_event(vllm(up=True), T0 + 40)
    assert [(a.name, a.state, a.ends_at) for a in resolved] == [("VllmTargetDown", "resolved", T0 + 40)]
    assert resolved[0].source == alert.source
    assert resolved[0].starts_at == T0 + 31
    assert eng.firing() == []


def test_condition_gone_before_for_never_fires() -> None:
    eng = defaults()
    eng.on_event(vllm(up=False), T0)
    assert eng.on_event(vllm(up=True), T0 + 5) == []
    assert eng.tick(T0 + 60) == []


def test_per_item_alerts_are_separate_and_missing_fields_never_fire() -> None:
    eng = defaults()
    snap = vllm(
        engines=[
            engine_stats("a", kv_cache_usage_ratio=0.99),
            engine_stats("b", kv_cache_usage_ratio=0.2),
            engine_stats("c"),
        ]
    )
    eng.on_event(snap, T0)
    fired = eng.tick(T0 + 121)
    assert [(a.name, a.labels["model_name"]) for a in fired] == [("VllmKvCacheSaturated", "a")]
    assert fired[0].value is None or fired[0].value == 1.0
    assert fired[0].annotations["summary"] == "KV cache of a on http://vllm-a:8000 is 99% full"
    # the item disappears from the snapshot: resolved
    gone = eng.on_event(vllm(engines=[engine_stats("b", kv_cache_usage_ratio=0.2)]), T0 + 130)
    assert [(a.name, a.state) for a in gone] == [("VllmKvCacheSaturated", "resolved")]


def test_increase_compares_with_the_previous_snapshot_of_the_same_item() -> None:
    eng = defaults()
    assert eng.on_event(vllm(engines=[engine_stats(preemptions_total=5.0)]), T0) == []  # first sight: no baseline
    assert eng.on_event(vllm(engines=[engine_stats(preemptions_total=5.0)]), T0 + 5) == []
    fired = eng.on_event(vllm(engines=[engine_stats(preemptions_total=7.0)]), T0 + 10)
    assert [(a.name, a.state) for a in fired] == [("VllmPreemptions", "firing")]
    resolved = eng.on_event(vllm(engines=[engine_stats(preemptions_total=7.0)]), T0 + 15)
    assert [(a.name, a.state) for a in resolved] == [("VllmPreemptions", "resolved")]
    # a counter reset is not an increase
    assert eng.on_event(vllm(engines=[engine_stats(preemptions_total=0.0)]), T0 + 20) == []


def test_ttft_p95_of_the_last_five_minutes_fires_and_resolves() -> None:
    slow = Histogram(buckets=[(0.5, 10.0), (1.0, 20.0), (5.0, 100.0)], sum=300.0, count=100.0)
    assert histogram_quantile(0.95, slow) == pytest.approx(1.0 + 4.0 * (95 - 20) / 80)
    assert histogram_quantile(0.95, Histogram(buckets=[], sum=0, count=0)) is None
    eng = defaults()

    def at(t: float, fast: float, slow_: float) -> list[str]:
        """Cumulative counts: ``fast`` requests under 0.5 s, ``slow_`` between 1 and 5 s, so far."""
        hist = Histogram(
            buckets=[(0.5, fast), (1.0, fast), (5.0, fast + slow_)], sum=0.1 * fast + 3 * slow_, count=fast + slow_
        )
        return [
            f"{a.name}:{a.state}"
            for a in eng.on_event(vllm(engines=[engine_stats(time_to_first_token_seconds=hist)]), t)
        ]

    # a long fast history, then a slow spell: the lifetime p95 would stay low, the last 5 minutes' does not
    for i in range(21):
        assert at(T0 + 15 * i, fast=1000.0 * (i + 1), slow_=0.0) == []
    t = T0 + 15 * 21
    fired: list[str] = []
    for i in range(1, 41):
        fired += at(t + 15 * i, fast=21000.0 + 10 * i, slow_=100.0 * i)
    assert fired == ["VllmTtftHigh:firing"]  # once, after 300 s of a slow last-5-minutes p95
    # fast again: once the slow requests leave the window, it resolves, though the lifetime p95 is still slow
    t += 15 * 40
    resolved: list[str] = []
    for i in range(1, 23):
        resolved += at(t + 15 * i, fast=21400.0 + 1000 * i, slow_=4000.0)
    assert resolved == ["VllmTtftHigh:resolved"]


def test_increase_of_a_histogram_is_bucket_by_bucket_and_a_reset_counts_from_zero() -> None:
    before = Histogram(buckets=[(1.0, 10.0), (2.0, 30.0)], sum=40.0, count=31.0)
    after = Histogram(buckets=[(1.0, 12.0), (2.0, 40.0)], sum=60.0, count=45.0)
    assert histogram_growth(before, after) == Histogram(buckets=[(1.0, 2.0), (2.0, 10.0)], sum=20.0, count=14.0)
    restarted = Histogram(buckets=[(1.0, 1.0), (2.0, 2.0)], sum=2.0, count=2.0)
    assert histogram_growth(after, restarted) == restarted
    assert histogram_growth(before, Histogram(buckets=[(5.0, 1.0)], sum=1.0, count=1.0)) is None


def test_a_windowed_increase_keeps_a_dozen_samples_however_often_snapshots_come() -> None:
    memory: dict[int, list[tuple[float, float | Histogram]]] = {}
    growths: list[Any] = []
    for t in range(1000):  # one snapshot a second, a counter growing by 1 a second
        scope = Scope(vllm(), None, memory, float(t))
        growths.append(scope.increase(0, float(t), 300.0))
        memory = scope.new_memory
        assert len(memory[0]) <= 12
    assert growths[0] is None
    assert all(300 <= g <= 330 for g in growths[400:])  # the window, at most 10 % longer


def test_increase_takes_an_optional_constant_window() -> None:
    rule = {"alert": "X", "event": "vllm.instance", "each": "engines", "when": "increase(preemptions_total, w) > 0"}
    with pytest.raises(RuleError, match="window"):
        parse_rule(rule)
    with pytest.raises(RuleError, match="window"):
        parse_rule({**rule, "when": "increase(preemptions_total, -5) > 0"})
    assert parse_rule({**rule, "when": "increase(preemptions_total, 60) > 0"}).when is not None


def test_heartbeat_silence_fires_and_a_new_heartbeat_resolves() -> None:
    eng = defaults()
    hb = Heartbeat(
        source="vllm-scraper@h:1",
        observed_at=T0,
        collector="vllm-scraper@h:1",
        interval_s=5.0,
        service="vllm-scraper",
        version="0.1",
        started_at=T0,
        ready=True,
    )
    assert eng.on_event(hb, T0) == []
    assert eng.tick(T0 + 20) == []
    fired = eng.tick(T0 + 31)
    assert [(a.name, a.labels["source"]) for a in fired] == [("CollectorHeartbeatMissing", "vllm-scraper@h:1")]
    assert eng.tick(T0 + 40) == []  # deduplicated
    resolved = eng.on_event(hb, T0 + 41)
    assert [(a.name, a.state) for a in resolved] == [("CollectorHeartbeatMissing", "resolved")]


def test_expired_source_resolves_its_alerts() -> None:
    eng = defaults(expiry_intervals=3.0)
    fired = []
    for t in range(0, 605, 5):
        fired += eng.on_event(vllm(status="loading"), T0 + t)
        fired += eng.tick(T0 + t + 1)
    assert [(a.name, a.starts_at) for a in fired] == [("VllmModelStuckLoading", T0 + 600)]
    assert eng.tick(T0 + 610) == []
    # interval 5 s × 3 = 15 s without a snapshot: the source is gone, so is its alert
    out = eng.tick(T0 + 620)
    assert [(a.name, a.state) for a in out] == [("VllmModelStuckLoading", "resolved")]


def test_user_file_overrides_and_disables(tmp_path: Path) -> None:
    user = tmp_path / "rules.yaml"
    user.write_text("""
rules:
  - alert: VllmQueueBacklog
    event: vllm.instance
    each: engines
    when: requests_waiting >= 1
    severity: critical
    labels: {target: "{source}"}
  - alert: VllmTargetDown
    disabled: true
""")
    rules = {r.name: r for r in AlertingConfig(rules_file=str(user)).engine().rules}
    assert "VllmTargetDown" not in rules
    assert rules["VllmQueueBacklog"].severity == "critical"
    assert rules["VllmQueueBacklog"].for_s == 0
    eng = AlertEngine(rules.values())
    fired = eng.on_event(vllm(up=False, engines=[engine_stats(requests_waiting=3.0)]), T0)
    assert [(a.name, a.severity) for a in fired] == [("VllmQueueBacklog", "critical")]


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"alert": "X", "event": "nope.kind", "when": "up"}, "unknown event"),
        ({"alert": "X", "event": "vllm.instance", "when": "__import__('os')"}, "unknown function"),
        ({"alert": "X", "event": "vllm.instance", "when": "up.__class__"}, "private attribute"),
        ({"alert": "X", "event": "vllm.instance", "when": "not_a_field > 1"}, "no field(s) ['not_a_field']"),
        ({"alert": "X", "event": "vllm.instance", "each": "enginez", "when": "up"}, "no list field"),
        ({"alert": "X", "event": "vllm.instance", "when": "up", "for": "soon"}, "bad duration"),
        ({"alert": "X", "event": "vllm.instance", "when": "up", "severity": "page"}, "severity"),
        ({"alert": "X", "event": "vllm.instance", "when": "[x for x in engines]"}, "not allowed"),
        ({"alert": "X", "event": "vllm.instance", "when": "up", "colour": "red"}, "unknown keys"),
        ({"alert": "bad name", "event": "vllm.instance", "when": "up"}, "Identifier"),
    ],
)
def test_invalid_rules_are_rejected_with_a_clear_message(rule: dict[str, object], error: str) -> None:
    with pytest.raises(RuleError, match=None) as info:
        parse_rule(rule)
    assert error in str(info.value)


def test_bad_rules_file(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("rules: {not: a list}\n")
    with pytest.raises(RuleError, match="'rules' list"):
        load_rules(bad)
    with pytest.raises(RuleError, match="No such file"):
        load_rules(tmp_path / "missing.yaml")


def test_durations() -> None:
    assert parse_duration("30s", "r") == 30
    assert parse_duration("5m", "r") == 300
    assert parse_duration("1h", "r") == 3600
    assert parse_duration(2, "r") == 2
    assert parse_duration("250ms", "r") == 0.25


def test_rules_for_other_event_types_cost_nothing() -> None:
    eng = defaults()
    hb_free = AlertEngine([r for r in eng.rules if r.event != "heartbeat.service"])
    hb = Heartbeat(
        source="x", observed_at=T0, collector="x", interval_s=5.0, service="x", version="1", started_at=T0, ready=True
    )
    assert hb_free.on_event(hb, T0) == []
    assert hb_free._seen == {}


def test_alertmanager_payload_shape() -> None:
    eng = defaults()
    eng.on_event(vllm(up=False), T0)
    firing = eng.tick(T0 + 31)
    resolved = eng.on_event(vllm(), T0 + 50)
    body = alertmanager_payload([*firing, *resolved], "http://agg:9750/")
    assert body[0]["labels"]["alertname"] == "VllmTargetDown"
    assert "endsAt" not in body[0]
    assert body[0]["startsAt"].endswith("Z")
    assert body[0]["generatorURL"] == "http://agg:9750/"
    assert body[1]["endsAt"] > body[1]["startsAt"]
    assert body[0]["annotations"]["runbook_url"] == "deploy/README.md#vllmtargetdown"


def test_a_pending_alert_of_an_expired_source_never_fires() -> None:
    eng = defaults(expiry_intervals=3.0)
    eng.on_event(vllm(up=False), T0)
    assert eng.tick(T0 + 31) == []
    assert eng.firing() == []


def test_out_of_order_snapshots_are_ignored() -> None:
    eng = AlertEngine(load_rules(DEFAULT_RULES_FILE), expiry_intervals=math.inf)
    eng.on_event(vllm(up=False, at=T0 + 10), T0)
    assert [a.name for a in eng.tick(T0 + 31)] == ["VllmTargetDown"]
    assert eng.on_event(vllm(up=True, at=T0 + 5), T0 + 32) == []  # older than the last one: no resolve
    assert [a.state for a in eng.on_event(vllm(up=True, at=T0 + 40), T0 + 40)] == ["resolved"]


def test_a_silent_source_is_forgotten_with_its_tombstone() -> None:
    eng = AlertEngine(load_rules(DEFAULT_RULES_FILE), forget_after_s=600)
    hb = Heartbeat(
        source="old@h:1",
        observed_at=T0,
        collector="old@h:1",
        interval_s=5.0,
        service="vllm-scraper",
        version="0.1",
        started_at=T0,
        ready=True,
    )
    eng.on_event(hb, T0)
    assert [a.state for a in eng.tick(T0 + 31)] == ["firing"]
    out = eng.tick(T0 + 601)
    assert [(a.name, a.state) for a in out] == [("CollectorHeartbeatMissing", "resolved")]
    assert eng.tick(T0 + 700) == []
    assert eng.firing() == []


def test_increase_memory_is_dropped_when_the_source_expires() -> None:
    eng = AlertEngine(load_rules(DEFAULT_RULES_FILE), expiry_intervals=3.0)
    eng.on_event(vllm(engines=[engine_stats(preemptions_total=5.0)]), T0)
    assert eng._memory
    eng.tick(T0 + 16)
    assert not eng._memory
    # back after expiry: no stale baseline, so no spurious preemption alert
    assert eng.on_event(vllm(engines=[engine_stats(preemptions_total=50.0)], at=T0 + 20), T0 + 20) == []


def test_a_type_error_in_a_rule_is_counted_not_raised() -> None:
    rule = parse_rule({"alert": "Weird", "event": "vllm.instance", "when": "error > 3"})  # str > int
    eng = AlertEngine([rule])
    assert eng.on_event(vllm(up=False), T0) == []
    assert eng.evaluation_errors == {"Weird": 1}

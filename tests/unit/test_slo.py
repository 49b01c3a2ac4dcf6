"""SLOs: the definition file's validation, the aggregator's windowed counts, burn rates and burn-rate alerts, its
bounded memory, and the generated Prometheus rules being the committed ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.litellm import LitellmProxySnapshot, ModelUsage
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot
from inferwatch.services.aggregator.alert_dispatch import AlertingConfig
from inferwatch.services.aggregator.render import render_exposition
from inferwatch.services.aggregator.slo import (
    BUCKET_BOUNDS,
    DEFAULT_SLO_FILE,
    FIELDS,
    WORKBOOK_ALERTS,
    BurnRateAlert,
    SloConfig,
    SloError,
    SloEvaluator,
    Source,
    load_slos,
    parse_slo,
)
from inferwatch.services.litellm_poller import core as litellm
from inferwatch.services.vllm_scraper.core import read_instance
from inferwatch.shared.exposition import parse_exposition
from scripts import slo_rules
from tests.support import FIXTURES
from tests.support.aggregator import vllm_snapshot

AVAILABILITY = parse_slo({"name": "avail", "source": "vllm", "sli": "availability", "objective": 0.99})
SHORT = SloConfig(  # the Workbook's windows, an hour as a minute
    (AVAILABILITY,),
    (
        BurnRateAlert("60s", "5s", 14.4, "page"),
        BurnRateAlert("360s", "30s", 6.0, "page"),
        BurnRateAlert("4320s", "360s", 1.0, "ticket"),
    ),
    budget_window="7200s",
)


def vllm(
    t: float, good: float, bad: float, model: str = "m", engine: str = "0", source: str = "a"
) -> VllmInstanceSnapshot:
    """An instance whose one engine has finished ``good`` requests with ``stop`` and ``bad`` with ``error``."""
    outcomes = {"stop": good, "error": bad}
    return vllm_snapshot(
        source, t, engines=[VllmEngineStats(model_name=model, engine=engine, request_success_total=outcomes)]
    )


def feed(evaluator: SloEvaluator, seconds: int, bad_share: float, start: float = 0.0, state: list[float] | None = None):
    """One snapshot a second, 100 requests a second of which ``bad_share`` fail; returns every transition."""
    good, bad = state or [0.0, 0.0]
    out = []
    for i in range(seconds):
        t = start + i
        good += 100 * (1 - bad_share)
        bad += 100 * bad_share
        out += evaluator.on_event(vllm(t, good, bad), t)
        out += evaluator.tick(t)
    if state is not None:
        state[:] = [good, bad]
    return out


# --- the definition file ---------------------------------------------------------------------------------


def test_the_shipped_slos_load_with_the_workbook_windows() -> None:
    config = load_slos(DEFAULT_SLO_FILE)
    assert config.alerts == WORKBOOK_ALERTS
    assert config.windows() == ["5m", "30m", "1h", "6h", "3d", "30d"]
    assert {s.sli for s in config.slos} == {"availability", "ttft", "inter_token_latency", "e2e_latency"}
    assert {s.source for s in config.slos} == {"vllm", "litellm"}


def test_a_threshold_between_bucket_bounds_is_refused_naming_the_nearest() -> None:
    with pytest.raises(SloError, match=r"threshold_s 2 is not a bucket bound .* use 1 or 2\.5"):
        parse_slo({"name": "t", "source": "vllm", "sli": "ttft", "objective": 0.9, "threshold_s": 2})
    assert (
        parse_slo({"name": "t", "source": "vllm", "sli": "ttft", "objective": 0.9, "threshold_s": 2.5}).threshold_s
        == 2.5
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"name": "x", "source": "litellm", "sli": "inter_token_latency", "objective": 0.9},
            "no 'inter_token_latency'",
        ),
        ({"name": "x", "source": "vllm", "sli": "availability", "objective": 1.0}, "strictly between 0 and 1"),
        ({"name": "X y", "source": "vllm", "sli": "availability", "objective": 0.9}, "needs name"),
        ({"name": "x", "source": "vllm", "sli": "availability", "objective": 0.9, "threshold_s": 1}, "no threshold_s"),
        ({"name": "x", "source": "vllm", "sli": "ttft", "objective": 0.9}, "needs threshold_s"),
        ({"name": "x", "source": "tgi", "sli": "ttft", "objective": 0.9}, "source must be"),
    ],
)
def test_bad_slos_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(SloError, match=message):
        parse_slo(raw)


def test_bad_windows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "slos.yaml"
    path.write_text("slos: []\nburn_rate_alerts: [{long: 5m, short: 1h, factor: 2, action: page}]\n")
    with pytest.raises(SloError, match="must be shorter"):
        load_slos(path)
    path.write_text("slos: []\nburn_rate_alerts: [{long: 1.5h, short: 5m, factor: 2, action: page}]\n")
    with pytest.raises(SloError, match="whole number"):
        load_slos(path)


# --- counting and burning ---------------------------------------------------------------------------------


def test_burn_rate_and_budget_are_exact_on_a_steady_burn() -> None:
    slos = SloEvaluator(SHORT)
    feed(slos, 120, 0.05)  # 5 % bad against a 1 % budget: 5x
    (series,) = slos.series.values()
    assert series.counts(119, 60) == pytest.approx((60 * 95, 60 * 100))  # 61 samples inside [59, 119]
    rates = {w: r for _, w, r in slos.burn_rates(119)}
    assert rates == pytest.approx({w: 5.0 for w in ("5s", "30s", "60s", "360s", "4320s", "7200s")})
    assert slos.budget_remaining(series, 119) == pytest.approx(-4.0)
    body = render_exposition([slos.metrics(119)]).decode()
    assert 'inferwatch_slo_error_budget_remaining_ratio{slo="avail",model_name="m"} -4' in body
    assert 'inferwatch_slo_burn_rate{slo="avail",model_name="m",window="60s"} 5' in body
    assert 'inferwatch_slo_objective_ratio{slo="avail",source="vllm",sli="availability"} 0.99' in body


@pytest.mark.parametrize("pair", SHORT.alerts, ids=lambda p: p.window)
@pytest.mark.parametrize("share", [1.1, 0.9])
def test_each_pair_fires_just_above_its_factor_and_not_below(pair: BurnRateAlert, share: float) -> None:
    slos = SloEvaluator(SHORT)
    burn = pair.factor * share
    feed(slos, 400, burn * AVAILABILITY.budget)
    assert {a.labels["window"] for a in slos.firing()} == {p.window for p in SHORT.alerts if p.factor < burn}


def test_a_fast_burn_fires_every_pair_and_resolves_the_page_when_it_ends() -> None:
    slos = SloEvaluator(SHORT)
    state = [0.0, 0.0]
    fired = feed(slos, 70, 0.20, state=state)  # 20x
    assert [(a.state, a.labels["window"], a.severity) for a in fired] == [
        ("firing", "60s/5s", "critical"),
        ("firing", "360s/30s", "critical"),
        ("firing", "4320s/360s", "warning"),
    ][: len(fired)]
    assert {a.labels["window"] for a in fired} == {"60s/5s", "360s/30s", "4320s/360s"}
    page = next(a for a in fired if a.labels["window"] == "60s/5s")
    assert page.labels == {
        "alertname": "SloErrorBudgetBurn",
        "severity": "critical",
        "slo": "avail",
        "model_name": "m",
        "action": "page",
        "window": "60s/5s",
    }
    assert page.value == pytest.approx(20.0)
    resolved = feed(slos, 10, 0.0, start=70, state=state)  # the short windows clear within seconds
    assert {a.labels["window"] for a in resolved if a.state == "resolved"} >= {"60s/5s"}


def test_the_page_fires_on_the_snapshot_that_crosses_the_threshold() -> None:
    slos = SloEvaluator(SHORT)
    state = [0.0, 0.0]
    assert feed(slos, 100, 0.0, state=state) == []
    fired = feed(slos, 10, 1.0, start=100, state=state)  # everything fails
    first = next(a for a in fired if a.labels["window"] == "60s/5s")
    # a total outage crosses 14.4 % of the long window's requests after 0.144 x 60 s (the Workbook's detection
    # time): at t=108 the 60 s window holds 9 bad seconds of 60 (15 %), at t=107 8 of 60 (13.3 %)
    assert first.starts_at == 108
    assert first.value == pytest.approx(9 / 60 / AVAILABILITY.budget)


def test_counter_resets_and_several_engines_add_up() -> None:
    slos = SloEvaluator(SHORT)
    for t, (g0, b0, g1, b1) in enumerate([(100, 0, 50, 0), (190, 10, 95, 5), (20, 20, 140, 10)]):
        slos.on_event(vllm(t, g0, b0, engine="0"), t)
        slos.on_event(vllm(t + 0.5, g1, b1, engine="1"), t + 0.5)
    (series,) = slos.series.values()
    # engine 0: +90/+10, then reset: +20/+20; engine 1: +45/+5, +45/+5
    assert (series.good, series.total) == (90 + 20 + 45 + 45, 100 + 40 + 50 + 50)


def test_litellm_routes_count_status_classes_and_histogram_buckets() -> None:
    config = SloConfig(
        (
            parse_slo({"name": "la", "source": "litellm", "sli": "availability", "objective": 0.9}),
            parse_slo({"name": "ll", "source": "litellm", "sli": "e2e_latency", "objective": 0.9, "threshold_s": 30}),
        ),
        SHORT.alerts,
        SHORT.budget_window,
    )
    slos = SloEvaluator(config)
    for t, n in enumerate((0, 100)):
        usage = ModelUsage(
            model_group="g",
            requests_total={"2xx": 8 * n, "4xx": n, "5xx": n},
            request_latency_seconds=Histogram(buckets=[(10.0, 5 * n), (30.0, 7 * n)], sum=0.0, count=10 * n),
        )
        snapshot = LitellmProxySnapshot(source="p", observed_at=t, collector="c", interval_s=1, up=True, usage=[usage])
        slos.on_event(snapshot, float(t))
    ratios = {s.slo.name: s.error_ratio(1, 60) for s in slos.series.values()}
    assert ratios == pytest.approx({"la": 0.1, "ll": 0.3})


def test_a_histogram_without_the_threshold_bucket_is_counted_not_guessed() -> None:
    ttft = parse_slo({"name": "t", "source": "vllm", "sli": "ttft", "objective": 0.9, "threshold_s": 2.5})
    slos = SloEvaluator(SloConfig((ttft,), SHORT.alerts, SHORT.budget_window))
    hist = Histogram(buckets=[(1.0, 5.0), (5.0, 9.0)], sum=1.0, count=10.0)
    event = vllm_snapshot("a", 1.0, engines=[VllmEngineStats(model_name="m", time_to_first_token_seconds=hist)])
    assert slos.on_event(event, 1.0) == []
    assert slos.series == {}
    assert slos.unreadable == {"t": 1}


def test_memory_stays_bounded_over_days_of_snapshots_and_windows_stay_close() -> None:
    config = SloConfig((AVAILABILITY,), WORKBOOK_ALERTS, "30d")
    thinned, exact = SloEvaluator(config), SloEvaluator(config, thinning=10**9)
    good = bad = 0.0
    for i in range(0, 4 * 86400, 15):  # four days of 15 s snapshots, the bad share changing every 40 minutes
        share = 0.2 if (i // 2400) % 3 == 0 else 0.01
        good, bad = good + 100 * (1 - share), bad + 100 * share
        thinned.on_event(vllm(i, good, bad), i)
        exact.on_event(vllm(i, good, bad), i)
    (series,) = thinned.series.values()
    assert len(series.times) < 6 * 2 * 60 + 60  # a few hundred samples, not 23,040
    now = series.times[-1]
    for window, seconds in thinned.windows.items():
        assert series.error_ratio(now, seconds) == pytest.approx(
            next(iter(exact.series.values())).error_ratio(now, seconds), rel=0.05
        ), window


def test_slo_alerts_travel_the_alert_engines_path() -> None:
    alerting = AlertingConfig()  # the aggregator's: the shipped SLOs as an extension of the rule engine
    engine = alerting.engine(extensions=[alerting.slos()])
    out = engine.on_event(vllm(1000.0, 1000, 0), 1000.0)
    out += engine.on_event(vllm(1030.0, 1000, 1000), 1030.0)  # every request of the last 30 s failed
    fired = {a.labels["window"] for a in out if a.name == "SloErrorBudgetBurn" and a.state == "firing"}
    assert fired == {pair.window for pair in WORKBOOK_ALERTS}
    assert {a.labels["window"] for a in engine.firing() if a.labels.get("slo") == "vllm-availability"} == fired


# --- the Prometheus copy ------------------------------------------------------------------------------------


def test_regenerating_the_slo_rules_gives_the_committed_files() -> None:
    for path, text in slo_rules.rendered(load_slos(DEFAULT_SLO_FILE)).items():
        assert path.read_text() == text, f"{path.name} is stale: run .venv/bin/python -m scripts.slo_rules --write"


# --- the accepted thresholds against recorded expositions ---------------------------------------------------

VLLM_RECORDINGS = [
    FIXTURES / "vllm-v0-metrics.txt",
    FIXTURES / "vllm-v1-metrics.txt",
    *sorted((FIXTURES / "vllm").glob("*.txt")),
]


def _bounds_checked(source: Source, items: Sequence[VllmEngineStats | ModelUsage]) -> int:
    """Assert that each latency histogram of ``items`` has every threshold the SLOs accept for ``source``; how many
    histograms there were."""
    checked = 0
    for item in items:
        for sli, bounds in BUCKET_BOUNDS[source].items():
            hist = getattr(item, FIELDS[source][sli])
            if hist is not None:
                assert set(bounds) <= {b for b, _ in hist.buckets}, (sli, item)
                checked += 1
    return checked


@pytest.mark.parametrize("path", VLLM_RECORDINGS, ids=lambda p: p.name)
def test_every_accepted_vllm_threshold_is_a_bucket_bound_of_the_recorded_histograms(path: Path) -> None:
    engines = read_instance(path.read_bytes(), None, None, max_engines=8, max_models=8).engines
    assert _bounds_checked("vllm", engines), "no latency histogram in the recording"


def test_every_accepted_litellm_threshold_is_a_bucket_bound_of_the_recorded_histograms() -> None:
    body = (FIXTURES / "litellm" / "metrics.http").read_bytes().split(b"\n\n", 1)[1]  # status and headers first
    usage = litellm.usage_by_group(parse_exposition(body, families=litellm.WANTED))
    assert _bounds_checked("litellm", usage), "no latency histogram in the recording"

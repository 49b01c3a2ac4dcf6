"""Both engines agree: the same counter series, fed to promtool (the generated PromQL rules) and to the aggregator's
SLO module (as vLLM snapshots), give the same burn rates and the same firing burn-rate alerts at every evaluation.

Three hours of one model at 15 s samples, its bad share changing from phase to phase (a calm start, a fast burn, a
slow burn, recovery), two SLOs (availability from finished reasons, TTFT from the 2.5 s bucket), the Workbook's
pairs with an hour as ten minutes. The aggregator's side is computed here, every 5 minutes; its values become the
expectations of a promtool test (burn rates rounded to 1e-4 by PromQL's own ``round``), so promtool passing is
the two engines agreeing. The aggregator keeps every sample here (``thinning`` off), as Prometheus does; thinning's
own error is bounded in tests/unit/test_slo.py.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot
from inferwatch.services.aggregator.slo import (
    ALERT_NAME,
    SEVERITY,
    BurnRateAlert,
    SloConfig,
    SloEvaluator,
    alert_annotations,
    parse_slo,
    prometheus_rules,
    record_name,
)
from tests.support import require_tool

STEP_S = 15
PHASES = [(40, 0.002), (14, 0.3), (30, 0.002), (50, 0.07), (46, 0.003)]  # (minutes, bad share)
EVERY_S = 300
CONFIG = SloConfig(
    (
        parse_slo({"name": "avail", "source": "vllm", "sli": "availability", "objective": 0.99}),
        parse_slo({"name": "ttft", "source": "vllm", "sli": "ttft", "objective": 0.98, "threshold_s": 2.5}),
    ),
    (
        BurnRateAlert("10m", "1m", 14.4, "page"),
        BurnRateAlert("1h", "5m", 6.0, "page"),
        BurnRateAlert("2h", "30m", 1.0, "ticket"),
    ),
    budget_window="3h",
)
LABELS = 'target="http://a:8000",container="c",model_name="m",engine="0"'


def prom_round(value: float, to_nearest: float) -> float:
    """PromQL's ``round(v, to_nearest)``, float for float."""
    inverse = 1.0 / to_nearest
    return math.floor(value * inverse + 0.5) / inverse


def _steps() -> list[tuple[int, float, float, float]]:
    """(t, good, bad, slow) cumulative at every sample: ``bad`` failed (finished_reason error), ``slow`` took
    over 2.5 s to the first token (the same share, on other requests)."""
    out, good, bad, slow, t = [], 100_000.0, 100_000.0, 100_000.0, 0
    for minutes, share in PHASES:
        for _ in range(minutes * 60 // STEP_S):
            out.append((t, good, bad, slow))
            bad += 50 * share
            good += 50 * (1 - share)
            slow += 50 * share * 2
            t += STEP_S
    out.append((t, good, bad, slow))
    return out


def _snapshot(t: int, good: float, bad: float, slow: float) -> VllmInstanceSnapshot:
    total = good + bad
    ttft = Histogram(buckets=[(1.0, (total - slow) / 2), (2.5, total - slow), (5.0, total)], sum=0.0, count=total)
    engine = VllmEngineStats(
        model_name="m", request_success_total={"stop": good, "error": bad}, time_to_first_token_seconds=ttft
    )
    return VllmInstanceSnapshot(
        source="http://a:8000",
        observed_at=t,
        collector="t",
        interval_s=STEP_S,
        up=True,
        container_name="c",
        engines=[engine],
    )


def _input_series(steps: list[tuple[int, float, float, float]]) -> list[dict[str, str]]:
    def values(column: list[float]) -> str:
        return " ".join(repr(v) for v in column)

    good, bad, slow = [s[1] for s in steps], [s[2] for s in steps], [s[3] for s in steps]
    total = [g + b for g, b in zip(good, bad, strict=True)]
    under = [n - s for n, s in zip(total, slow, strict=True)]
    family = "inferwatch_vllm_"
    return [
        {"series": f'{family}request_success_total{{{LABELS},finished_reason="stop"}}', "values": values(good)},
        {"series": f'{family}request_success_total{{{LABELS},finished_reason="error"}}', "values": values(bad)},
        {"series": f'{family}time_to_first_token_seconds_bucket{{{LABELS},le="2.5"}}', "values": values(under)},
        {"series": f"{family}time_to_first_token_seconds_count{{{LABELS}}}", "values": values(total)},
    ]


def _expectations(slos: SloEvaluator, t: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    exprs = []
    for series in slos.series.values():
        for window, seconds in slos.windows.items():
            ratio = series.error_ratio(t, seconds)
            samples = []
            if ratio is not None:
                burn = prom_round(ratio / series.slo.budget, 0.0001)
                samples = [{"labels": f'{{model_name="m",slo="{series.slo.name}"}}', "value": burn}]
            exprs.append(
                {
                    "expr": f'round({record_name(window)}{{slo="{series.slo.name}"}} / {series.slo.budget!r}, 0.0001)',
                    "eval_time": f"{t}s",
                    "exp_samples": samples,
                }
            )
    firing = []
    for alert in slos.firing():
        slo = next(s for s in CONFIG.slos if s.name == alert.labels["slo"])
        pair = next(p for p in CONFIG.alerts if p.window == alert.labels["window"])
        labels = {k: v for k, v in alert.labels.items() if k != "alertname"}
        assert labels["severity"] == SEVERITY[pair.action]
        firing.append({"exp_labels": labels, "exp_annotations": alert_annotations(slo, pair, "m")})
    return exprs, {"eval_time": f"{t}s", "alertname": ALERT_NAME, "exp_alerts": firing}


def test_promtool_and_the_aggregator_give_the_same_burn_rates_and_alerts(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    steps = _steps()
    slos = SloEvaluator(CONFIG, thinning=10**9)
    exprs: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for t, good, bad, slow in steps:
        slos.on_event(_snapshot(t, good, bad, slow), float(t))
        if t and t % EVERY_S == 0:
            slos.tick(float(t))
            more, firing = _expectations(slos, t)
            exprs += more
            alerts.append(firing)
            seen |= {(a["exp_labels"]["slo"], a["exp_labels"]["window"]) for a in firing["exp_alerts"]}
    # not a comparison of two silences: every pair of both SLOs fired at some evaluation, and none at others
    assert seen == {(s.name, p.window) for s in CONFIG.slos for p in CONFIG.alerts}
    assert any(not a["exp_alerts"] for a in alerts)

    (tmp_path / "rules.yml").write_text(yaml.safe_dump(prometheus_rules(CONFIG), sort_keys=False, width=1000))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": f"{STEP_S}s",
        "tests": [
            {
                "name": "the aggregator's burn rates and alerts",
                "interval": f"{STEP_S}s",
                "input_series": _input_series(steps),
                "promql_expr_test": exprs,
                "alert_rule_test": alerts,
            }
        ],
    }
    (tmp_path / "agree.test.yml").write_text(yaml.safe_dump(test, sort_keys=False, width=100_000))
    proc = subprocess.run(
        [promtool, "test", "rules", "agree.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"the engines disagree:\n{(proc.stdout + proc.stderr)[:6000]}"

"""Helpers shared by the benchmarks: timing, result files, tables."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """(best, median) wall seconds of ``fn`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile by rank (``int(q * n)``, capped at the largest); NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def wait_ready(urls: dict[str, str], timeout_s: float) -> list[str]:
    """Poll every service's ``/readyz`` until each answered 200 or ``timeout_s`` passed; the names still not ready."""
    pending = dict(urls)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    del pending[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    return sorted(pending)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict[str, Any], path: str | None = None) -> Path:
    """Write one run's figures (bench/results/<name>-<timestamp>.json unless a path is given)."""
    payload = {
        "bench": name,
        "time": time.time(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        **payload,
    }
    out = Path(path) if path else RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    return out


# --------------------------------------------------------------------------------------------
# The goals `make bench` checks: one declaration each. A bench reports its figure with `report_goal`,
# which prints one ``goal <key>: ... MET|MISSED|REPORTED`` line (REPORTED: a figure to state, with no number to
# reach); run_all.py reads those lines back and prints every goal of this table, with ``not run`` for the benches
# it skipped.


@dataclass(frozen=True)
class Goal:
    """One figure `make bench` holds us to: ``figure <op> target`` (op ``>=`` or ``<=``)."""

    key: str
    bench: str  # the bench that measures it (bench/bench_<name>.py)
    figure: str  # what is measured, against which baseline
    op: str
    target: float
    unit: str = "x"
    report_only: bool = False  # a figure the issue asks to state, with no number to reach: printed as REPORTED

    @property
    def bound(self) -> str:
        """`` <= 1.5x`` as printed after the figure ("" for a report-only goal)."""
        return "" if self.report_only else f" {self.op} {self.target:g}{self.unit}"

    def met(self, value: float) -> bool:
        """Whether ``value`` reaches the goal."""
        return value >= self.target if self.op == ">=" else value <= self.target


GOALS: dict[str, Goal] = {
    g.key: g
    for g in (
        Goal(
            "alert_latency",
            "alert_latency",
            "alert latency p99, condition in a snapshot -> alert on NATS",
            "<=",
            1000,
            " ms",
        ),
        Goal(
            "exposition_parse",
            "exposition",
            "exposition parse vs prometheus_client (worst of vLLM, LiteLLM, EPP fixtures)",
            ">=",
            10,
        ),
        Goal("freshness", "freshness", "container start -> series p99", "<=", 1000, " ms"),
        Goal(
            "render_speed",
            "render",
            "/metrics render at 1 % churn vs generate_latest (worst of 100k, 1M series)",
            ">=",
            10,
        ),
        Goal(
            "render_memory", "render", "/metrics render memory vs generate_latest (worst of 100k, 1M series)", "<=", 0.5
        ),
        Goal("ingest", "ingest", "aggregator ingest vs a raw nats-py callback", ">=", 0.8),
        Goal("scrape_cpu", "scrape", "scrape CPU per cycle vs Prometheus on the same targets", "<=", 1.0),
        Goal("scrape_cpu_floor", "scrape", "scrape CPU per cycle vs Prometheus (floor)", "<=", 1.5),
        Goal("metrics_under_load", "scrape_under_load", "/metrics p99 under the event flood vs idle", "<=", 1.5),
        Goal("readyz_under_load", "scrape_under_load", "aggregator /readyz p99 under the event flood", "<=", 50, " ms"),
        Goal("readyz_services", "readyz", "every service's /readyz p99 under a flood", "<=", 100, " ms"),
        Goal("gpu_poll", "gpu", "gpu-agent poll cost per GPU per cycle", "<=", 5, " ms"),
        Goal(
            "fleet",
            "fleet",
            "fleet CPU per target vs Prometheus on the same vLLM, LiteLLM and EPP endpoints (stated, no goal)",
            "<=",
            0.0,
            report_only=True,
        ),
    )
}


def report_goal(key: str, value: float, detail: str = "") -> bool:
    """Print the goal line for ``key`` with ``value`` (and what else to know); return whether it is met."""
    goal = GOALS[key]
    met = goal.met(value)
    extra = f"; {detail}" if detail else ""
    verdict = "REPORTED" if goal.report_only else "MET" if met else "MISSED"
    print(
        f"goal {key}: {goal.figure}{goal.bound}: {verdict} ({value:.3g}{goal.unit}{extra})",
        flush=True,
    )
    return met

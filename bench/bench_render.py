"""Aggregator /metrics render vs prometheus_client.generate_latest on the same series.

Each (implementation, size) runs in a fresh subprocess so peak RSS is its own. Series: gauges with
three labels (host, gpu, metric), 100 series per source, like a fleet of GPU hosts.
Ours: snapshots applied to the aggregator's SourceTable; "cold" is the first scrape (renders every
source's chunks), "warm" a later scrape with nothing changed (only joins), "1% churn" a scrape after
1% of the sources sent a new snapshot. Baseline: a prometheus_client Gauge filled with the same
values, rendered with generate_latest.

Run: .venv/bin/python bench/bench_render.py [--sizes 10000,100000,1000000] [--json PATH]
Goal (issue #2): >= 10x faster and <= 0.5x memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import best_of, report_goal, table, write_json

PER_SOURCE = 100


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(n: int) -> dict[str, float]:
    from inferwatch.contracts import Event
    from inferwatch.contracts.heartbeat import Heartbeat
    from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, render_exposition
    from inferwatch.services.aggregator.state import SourceTable

    family = Family("inferwatch_bench_value", "gauge", "Bench series.")
    metrics = [f"m{i}" for i in range(PER_SOURCE // 4)]

    def render_source(event: Event, w: SeriesWriter) -> None:
        assert isinstance(event, Heartbeat)
        for gpu in range(4):
            for m in metrics:
                w.gauge(
                    family, label_block({"host": event.source, "gpu": str(gpu), "metric": m}), event.targets * 0.5 + gpu
                )

    base = _rss_mb()
    table_ = SourceTable({Heartbeat: render_source})
    sources = n // PER_SOURCE
    t0 = time.perf_counter()
    for i in range(sources):
        table_.apply(
            Heartbeat(
                source=f"host-{i:05d}",
                observed_at=1.0,
                collector="b",
                interval_s=1e9,
                service="b",
                version="0",
                started_at=0,
                ready=True,
                targets=i,
            ),
            now=0.0,
        )
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    body = render_exposition(table_.rendered())
    cold_s = time.perf_counter() - t0
    __, warm_med = best_of(lambda: render_exposition(table_.rendered()), 5)

    rounds = iter(range(1, 1_000_000))

    def churn() -> bytes:
        k = next(rounds)  # new values every round: a re-sent identical snapshot would skip its re-render
        for i in range(0, sources, 100):
            table_.apply(
                Heartbeat(
                    source=f"host-{i:05d}",
                    observed_at=2.0 + time.time(),
                    collector="b",
                    interval_s=1e9,
                    service="b",
                    version="0",
                    started_at=0,
                    ready=True,
                    targets=i + k,
                ),
                now=0.0,
            )
        return render_exposition(table_.rendered())

    __, churn_med = best_of(churn, 5)
    return {
        "fill_s": fill_s,
        "cold_s": cold_s,
        "warm_s": warm_med,
        "churn_s": churn_med,
        "bytes": len(body),
        "rss_delta_mb": _rss_mb() - base,
        "series": body.count(b"\n") - 2 - 3 * sources,
    }


def run_baseline(n: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    base = _rss_mb()
    registry = CollectorRegistry()
    gauge = Gauge("inferwatch_bench_value", "Bench series.", ["host", "gpu", "metric"], registry=registry)
    metrics = [f"m{i}" for i in range(PER_SOURCE // 4)]
    t0 = time.perf_counter()
    for i in range(n // PER_SOURCE):
        for gpu in range(4):
            for m in metrics:
                gauge.labels(f"host-{i:05d}", str(gpu), m).set(i * 0.5 + gpu)
    fill_s = time.perf_counter() - t0
    _best, med = best_of(lambda: generate_latest(registry), 5)
    body = generate_latest(registry)
    return {"fill_s": fill_s, "render_s": med, "bytes": len(body), "rss_delta_mb": _rss_mb() - base}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, n = args.child.split(":")
        print(json.dumps((run_ours if impl == "ours" else run_baseline)(int(n))))
        return 0
    rows = []
    met = True
    for n in (int(s) for s in args.sizes.split(",")):
        res = {}
        for impl in ("baseline", "ours"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", f"{impl}:{n}"], capture_output=True, text=True, check=True
            )
            res[impl] = json.loads(out.stdout)
        b, o = res["baseline"], res["ours"]
        speed_warm = b["render_s"] / o["warm_s"]
        speed_churn = b["render_s"] / o["churn_s"]
        speed_cold = b["render_s"] / o["cold_s"]
        mem = o["rss_delta_mb"] / b["rss_delta_mb"]
        met &= speed_churn >= 10 and mem <= 0.5
        rows.append(
            {
                "series": n,
                "generate_latest ms": f"{b['render_s'] * 1e3:.1f}",
                "ours warm ms": f"{o['warm_s'] * 1e3:.2f}",
                "ours 1% churn ms": f"{o['churn_s'] * 1e3:.2f}",
                "ours cold ms": f"{o['cold_s'] * 1e3:.1f}",
                "speedup warm/churn/cold": f"{speed_warm:.0f}x / {speed_churn:.0f}x / {speed_cold:.1f}x",
                "RSS MB base/ours": f"{b['rss_delta_mb']:.0f} / {o['rss_delta_mb']:.0f}",
                "memory ratio": f"{mem:.2f}x",
                "bytes/series base/ours": f"{b['rss_delta_mb'] * 2**20 / n:.0f} / {o['rss_delta_mb'] * 2**20 / n:.0f}",
                "same bytes": "yes" if abs(b["bytes"] - o["bytes"]) / b["bytes"] < 0.05 else "no",
            }
        )
        res["n"] = n
        rows[-1]["_raw"] = res
    print(table(rows, [c for c in rows[0] if not c.startswith("_")]))
    raw = [r["_raw"] for r in rows]
    speed = min(r["baseline"]["render_s"] / r["ours"]["churn_s"] for r in raw)
    memory = max(r["ours"]["rss_delta_mb"] / r["baseline"]["rss_delta_mb"] for r in raw)
    met = report_goal("render_speed", speed) & report_goal("render_memory", memory)
    path = write_json("render", {"rows": [r["_raw"] for r in rows], "goal_met": met}, args.json)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

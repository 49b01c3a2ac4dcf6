"""Condition in a snapshot → alert on NATS: p50/p99 latency, firing and resolved.

Runs a nats-server and the aggregator (`inferwatch run aggregator`) with a rules file holding
VllmTargetDown with ``for: 0s``, then publishes ``--samples`` vLLM snapshots alternately down and up and
times each one from publish to the matching alert (``firing`` / ``resolved``) on
the rule's alert subjects (``inferwatch.v1.alert.VllmTargetDown.*``).

Baseline: a Prometheus alerting rule is evaluated every ``evaluation_interval`` (1 m by default) after the
series is scraped (15 s): a condition becomes an alert after U(0, 15) + U(0, 60) s, p50 ≈ 37.5 s, p99 ≈ 71 s
(computed, not measured: measuring it needs minutes per sample). The shipped rules' ``for`` durations come
on top in both systems and are left out of both.

    .venv/bin/python -m bench.bench_alert_latency --samples 200 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._common import percentile, report_goal, write_json
from inferwatch.contracts import Event, type_filter
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import EmbeddedNats
from inferwatch.shared.ports import free_port
from tests.support.aggregator import FAST_RULES as RULES  # VllmTargetDown with for: 0s

ROOT = Path(__file__).resolve().parents[1]


def _baseline(samples: int, scrape_s: float = 15.0, eval_s: float = 60.0) -> tuple[float, float]:
    rng = random.Random(1)
    draws = [rng.uniform(0, scrape_s) + rng.uniform(0, eval_s) for _ in range(max(samples, 10_000))]
    return percentile(draws, 0.5), percentile(draws, 0.99)


async def _measure(nats_url: str, samples: int) -> dict[str, list[float]]:
    bus = Bus(BusSettings(servers=(nats_url,)), name="bench-alert-latency")
    await bus.connect()
    arrived: asyncio.Queue[tuple[float, str]] = asyncio.Queue()

    async def on_alert(event: Event, _subject: str) -> None:
        if isinstance(event, Alert):
            await arrived.put((time.perf_counter(), event.state))

    await bus.subscribe(type_filter(Alert, "VllmTargetDown"), on_alert)
    await bus.flush()
    out: dict[str, list[float]] = {"firing": [], "resolved": []}
    try:
        for i in range(samples):
            up = i % 2 == 1
            sent = time.perf_counter()
            await bus.publish(
                VllmInstanceSnapshot(
                    source="http://vllm-bench:8000",
                    observed_at=time.time(),
                    collector="bench",
                    interval_s=60.0,
                    up=up,
                    error="" if up else "timeout",
                )
            )
            at, state = await asyncio.wait_for(arrived.get(), timeout=10)
            out[state].append(at - sent)
            await asyncio.sleep(0.01)
    finally:
        await bus.close()
    return out


def main() -> int:
    """Run the measurement and print (and write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with EmbeddedNats(jetstream=False) as server, tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        port = free_port()
        env = {
            **os.environ,
            "NATS_URL": server.url,
            "INFERWATCH_AGGREGATOR_HTTP_PORT": str(port),
            "INFERWATCH_AGGREGATOR_RULES_FILE": str(rules),
            "INFERWATCH_LOG_LEVEL": "error",
        }
        agg = subprocess.Popen([sys.executable, "-m", "inferwatch", "run", "aggregator"], env=env, cwd=ROOT)
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            times = asyncio.run(_measure(server.url, args.samples))
        finally:
            agg.terminate()
            agg.wait(10)
    base_p50, base_p99 = _baseline(args.samples)
    every = times["firing"] + times["resolved"]
    print(f"snapshot published -> alert on NATS, {len(every)} alerts through a real nats-server and aggregator:")
    for state in ("firing", "resolved"):
        p50, p99 = percentile(times[state], 0.5), percentile(times[state], 0.99)
        print(f"  {state:9s} p50 {p50 * 1e3:.2f} ms  p99 {p99 * 1e3:.2f} ms")
    p99 = percentile(every, 0.99)
    print(
        f"  Prometheus baseline (computed: 15 s scrape + 60 s evaluation interval): p50 {base_p50:.1f} s, "
        f"p99 {base_p99:.1f} s -> ratio {base_p99 / p99:,.0f}x (p99)"
    )
    report_goal("alert_latency", p99 * 1e3)
    path = write_json(
        "alert_latency",
        {"samples": times, "baseline_p50_s": base_p50, "baseline_p99_s": base_p99, "goal_met": p99 <= 1.0},
        args.json,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Aggregator /metrics and /readyz latency under heavy ingest vs idle, in the same run.

An aggregator process (`inferwatch run aggregator`) holds 1,000 vLLM instance snapshots and the 1,000
heartbeat sources of the flood. We time 200 GET /metrics and 200 GET /readyz with no ingest (baseline),
then again while a publisher process floods NATS with those heartbeats as fast as it can (its rate is
reported). ``INFERWATCH_AGGREGATOR_INGEST_THREAD=0`` in the environment measures the single-loop aggregator.

Run: .venv/bin/python bench/bench_scrape_under_load.py [--json PATH]
Goals: bench._common.GOALS['metrics_under_load'] and ['readyz_under_load'].
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import percentile, report_goal, table, write_json  # noqa: E402
from inferwatch.contracts.vllm import VllmInstanceSnapshot  # noqa: E402
from tests.support.aggregator import vllm_snapshot as snapshot  # noqa: E402
from tests.support.flood import heartbeat_flood  # noqa: E402


def _flood(url: str, seconds: float, rate: float, counter: mp.Value) -> None:  # type: ignore[valid-type]
    import nats
    import nats.errors

    payloads = heartbeat_flood()

    async def run() -> None:
        nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
        sent = 0
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            for subject, payload in payloads:
                await nc.publish(subject, payload)
            sent += len(payloads)
            try:
                await nc.flush(timeout=10)
            except nats.errors.Error:
                break  # the server is going away: report what was sent
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:  # hold the offered rate
                await asyncio.sleep(ahead)
        counter.value = sent
        await nc.close()

    asyncio.run(run())


def _probe(url: str, n: int) -> tuple[list[float], int]:
    """``n`` sequential GETs: their latencies, and how many did not answer 200 (e.g. /readyz 503 while the
    aggregator reconnects after nats-server cut it as a slow consumer): an answer all the same, timed."""
    latencies: list[float] = []
    not_ok = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            status = client.get(url).status_code
            latencies.append(time.perf_counter() - t0)
            not_ok += status != 200
    return latencies, not_ok


def _row(endpoint: str, idle: list[float], load: list[float]) -> dict[str, str]:
    return {
        "endpoint": endpoint,
        "idle p50 ms": f"{percentile(idle, 0.5) * 1e3:.1f}",
        "idle p99 ms": f"{percentile(idle, 0.99) * 1e3:.1f}",
        "ingest p50 ms": f"{percentile(load, 0.5) * 1e3:.1f}",
        "ingest p99 ms": f"{percentile(load, 0.99) * 1e3:.1f}",
        "p99 ratio": f"{percentile(load, 0.99) / percentile(idle, 0.99):.2f}x",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100_000, help="offered events/s")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from inferwatch.shared.bus import Bus, BusSettings
    from inferwatch.shared.natsserver import EmbeddedNats
    from inferwatch.shared.ports import free_port

    with EmbeddedNats(jetstream=False) as server:
        port = free_port()
        env = {
            **os.environ,
            "NATS_URL": server.url,
            "INFERWATCH_AGGREGATOR_HTTP_PORT": str(port),
            "INFERWATCH_LOG_LEVEL": "error",
        }
        agg = subprocess.Popen([sys.executable, "-m", "inferwatch", "run", "aggregator"], env=env, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(base + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)

            async def seed() -> None:
                bus = Bus(BusSettings(servers=(server.url,)))
                await bus.connect()
                for i in range(1000):
                    await bus.publish(_long_lived(i))
                # The flood's 1,000 heartbeat sources too: idle and flood then render the same sources, and
                # the ratio says what ingest costs /metrics (not what 1,000 more sources cost it).
                for subject, payload in heartbeat_flood():
                    await bus.publish_raw(subject, payload)
                await bus.flush()
                await bus.close()

            asyncio.run(seed())
            time.sleep(1)
            body = httpx.get(base + "/metrics").text
            series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
            idle_m, _ = _probe(base + "/metrics", args.scrapes)
            idle_r, _ = _probe(base + "/readyz", args.scrapes)
            ctx = mp.get_context("spawn")
            counter = ctx.Value("q", 0)
            flood_s = 30.0
            flooder = ctx.Process(target=_flood, args=(server.url, flood_s, args.rate, counter))
            flooder.start()
            time.sleep(2)
            t0 = time.monotonic()
            load_m, _ = _probe(base + "/metrics", args.scrapes)
            load_r, not_ready = _probe(base + "/readyz", args.scrapes)
            measured_s = time.monotonic() - t0
            flooder.join(flood_s + 30)
            rate = counter.value / flood_s
            time.sleep(2)  # let the backlog drain before reading what the aggregator took in
            own = httpx.get(base + "/metrics", timeout=30).text
            ingested = sum(
                float(line.rsplit(" ", 1)[1])
                for line in own.splitlines()
                if line.startswith('inferwatch_aggregator_events_total{domain="heartbeat"')
            ) - len(heartbeat_flood())  # the seeded ones
            slow_drops = sum(
                float(line.rsplit(" ", 1)[1])
                for line in own.splitlines()
                if line.startswith('inferwatch_aggregator_dropped_total{reason="slow_consumer"')
            )
            cuts = sum(
                float(line.rsplit(" ", 1)[1])
                for line in own.splitlines()
                if line.startswith("inferwatch_aggregator_nats_disconnects_total")
            )
        finally:
            agg.terminate()
            agg.wait(10)
    rows = [_row("/metrics", idle_m, load_m), _row("/readyz", idle_r, load_r)]
    print(
        f"{series} series on /metrics; publisher offered {rate:,.0f} events/s for {flood_s:.0f} s "
        f"(scrapes took {measured_s:.1f} s of it)"
    )
    print(
        f"aggregator ingested {ingested:,.0f} of {counter.value:,} published; slow-consumer drops {slow_drops:,.0f}; "
        f"disconnects (server-side slow-consumer cuts) {cuts:.0f}; /readyz not ready {not_ready}/{args.scrapes}"
    )
    print(table(rows, list(rows[0])))
    idle_p99, load_p99 = percentile(idle_m, 0.99), percentile(load_m, 0.99)
    report_goal(
        "metrics_under_load",
        load_p99 / idle_p99,
        f"{idle_p99 * 1e3:.1f} -> {load_p99 * 1e3:.1f} ms at {rate:,.0f} events/s offered",
    )
    report_goal("readyz_under_load", percentile(load_r, 0.99) * 1e3)
    path = write_json(
        "scrape_under_load",
        {
            "series": series,
            "offered_rate": rate,
            "ingested": ingested,
            "slow_consumer_drops": slow_drops,
            "disconnects": cuts,
            "not_ready": not_ready,
            "idle_metrics": idle_m,
            "load_metrics": load_m,
            "idle_readyz": idle_r,
            "load_readyz": load_r,
        },
        args.json,
    )
    print(f"results: {path}")
    return 0


def _long_lived(i: int) -> VllmInstanceSnapshot:
    s = snapshot(source=f"http://vllm-{i}:8000", observed_at=time.time())
    fields = {f: getattr(s, f) for f in s.__struct_fields__}
    fields["interval_s"] = 3600.0  # stays for the whole run
    return VllmInstanceSnapshot(**fields)


if __name__ == "__main__":
    raise SystemExit(main())

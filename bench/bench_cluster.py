"""A 3-node NATS cluster losing nodes, and an aggregator HA pair losing a replica.

1. Recovery: an aggregator and a vllm-scraper (processes) on a 3-node cluster scrape simulated vLLM
   targets every 0.5 s; ``--kills`` times, the node carrying the aggregator's connection is SIGKILLed and
   the time until every source is fresh on the aggregator's /metrics again is measured (then the node is
   restarted). Goal: p99 ≤ 5 s.
2. Alert transitions: two aggregators with the alert stream, ``--transitions`` transitions (targets going
   down and up), one replica SIGKILLed halfway; lost and duplicated transitions in the stream are counted.
   Goal: 0 and 0. Baseline, same run: the same pair publishing plainly (no stream), counting the copies
   a subscriber on the alert subjects receives.

    .venv/bin/python -m bench.bench_cluster [--kills 10] [--transitions 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench._common import percentile, write_json
from inferwatch.contracts import Event, decode, subject_filter
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import NatsCluster
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration, serve
from tests.support import service_process, stop_processes
from tests.support.aggregator import fresh_sources, write_fast_rules

STREAM = "INFERWATCH_ALERTS"


async def _fresh_sources(client: httpx.AsyncClient, url: str, since: float) -> int:
    try:
        body = (await client.get(url + "/metrics")).text
    except httpx.HTTPError:
        return 0
    return fresh_sources(body, since)


async def recovery(kills: int) -> list[float]:
    """Seconds from each node kill until every vLLM source is fresh again."""
    fleet = [SimulatedVllm(f"m{i}", f"org/m{i}", VllmGeneration.V1, "0.33.0", seed=i) for i in range(3)]
    pairs = await serve(fleet)
    out: list[float] = []
    with NatsCluster(3) as cluster:
        env = {
            "NATS_URL": ",".join(cluster.urls),
            "INFERWATCH_VLLM_TARGETS": ",".join(url for url, _ in pairs),
            "INFERWATCH_VLLM_INTERVAL_S": "0.5",
            "INFERWATCH_VLLM_SHARD": "0",
            "INFERWATCH_LOG_LEVEL": "error",
        }
        agg, url = service_process("aggregator", env)
        scraper, _ = service_process("vllm-scraper", env)
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                deadline = time.monotonic() + 60
                while await _fresh_sources(client, url, 0) < len(fleet):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the sources never reached the aggregator")
                    await asyncio.sleep(0.2)
                name = f"aggregator@{os.uname().nodename}:{agg.pid}"
                for _ in range(kills):
                    node = cluster.node_serving(name)
                    if node is None:
                        raise RuntimeError("the aggregator is connected to no node")
                    proc = cluster.nodes[node].proc
                    assert proc is not None
                    killed_at, started = time.time(), time.monotonic()
                    proc.kill()
                    proc.wait(5)
                    while await _fresh_sources(client, url, killed_at) < len(fleet):
                        if time.monotonic() - started > 30:
                            raise RuntimeError("the sources did not come back within 30 s")
                        await asyncio.sleep(0.05)
                    out.append(time.monotonic() - started)
                    cluster.nodes[node].start()
                    await asyncio.sleep(2)  # routes and JetStream settle before the next kill
        finally:
            stop_processes([agg, scraper])
            for _, runner in pairs:
                await runner.cleanup()
    return out


async def transitions(count: int, stream: bool) -> dict[str, int]:
    """Publish ``count`` transitions to an aggregator pair, kill one replica halfway; count what arrived."""
    with tempfile.TemporaryDirectory() as tmp, NatsCluster(3) as cluster:
        rules = write_fast_rules(Path(tmp) / "rules.yaml", "VllmTargetDown")
        env = {
            "NATS_URL": ",".join(cluster.urls),
            "INFERWATCH_AGGREGATOR_RULES_FILE": str(rules),
            "INFERWATCH_AGGREGATOR_ALERTS_TICK_S": "0.1",
            "INFERWATCH_AGGREGATOR_ALERT_STREAM": STREAM if stream else "",
            "INFERWATCH_LOG_LEVEL": "error",
        }
        replicas = [service_process("aggregator", env) for _ in range(2)]
        bus = Bus(BusSettings(servers=tuple(cluster.urls)), name="bench-ha")
        await bus.connect()
        received: Counter[tuple[str, str]] = Counter()

        async def on_alert(event: Event, _subject: str) -> None:
            if isinstance(event, Alert):
                received[(event.labels["target"], event.state)] += 1

        await bus.subscribe(subject_filter("alert"), on_alert)
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                for _, url in replicas:
                    while True:
                        try:
                            if (await client.get(url + "/readyz")).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            for i in range(count):
                target, up = f"http://vllm-{i // 2}:8000", i % 2 == 1
                await bus.publish(
                    VllmInstanceSnapshot(
                        source=target, observed_at=time.time(), collector="bench", interval_s=60.0, up=up
                    )
                )
                if i == count // 2:
                    replicas[0][0].send_signal(signal.SIGKILL)
                await asyncio.sleep(0.15)
            await asyncio.sleep(2)
            copies = received
            if stream:
                js = bus.client.jetstream()
                info = await js.stream_info(STREAM)
                copies = Counter()
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    event = decode((await js.get_msg(STREAM, seq)).data or b"")
                    if isinstance(event, Alert):
                        copies[(event.labels["target"], event.state)] += 1
            expected = {(f"http://vllm-{i // 2}:8000", "resolved" if i % 2 else "firing") for i in range(count)}
            return {
                "expected": len(expected),
                "lost": sum(1 for key in expected if copies[key] == 0),
                "duplicated": sum(n - 1 for n in copies.values() if n > 1),
            }
        finally:
            await bus.close()
            stop_processes([proc for proc, _ in replicas])


def main() -> None:
    """Run both measurements and print them with their goals."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--transitions", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    times = asyncio.run(recovery(args.kills))
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    print(f"node loss -> every source fresh, {len(times)} kills: p50 {p50:.2f} s, p99 {p99:.2f} s")
    print(f"  goal p99 <= 5 s: {'MET' if p99 <= 5 else 'MISSED'}")
    plain = asyncio.run(transitions(args.transitions, stream=False))
    deduped = asyncio.run(transitions(args.transitions, stream=True))
    print(f"alert transitions, one of two replicas SIGKILLed halfway ({plain['expected']} expected):")
    print(f"  baseline, plain publishes: {plain['lost']} lost, {plain['duplicated']} duplicate copies on the subject")
    print(f"  alert stream: {deduped['lost']} lost, {deduped['duplicated']} duplicated")
    met = deduped["lost"] == 0 and deduped["duplicated"] == 0
    print(f"  goal 0 lost and 0 duplicated: {'MET' if met else 'MISSED'}")
    result: dict[str, Any] = {"recovery_s": times, "p50_s": p50, "p99_s": p99, "plain": plain, "stream": deduped}
    write_json("cluster", result, args.json)


if __name__ == "__main__":
    main()

"""Aggregator ingest vs a raw nats-py subscriber, on the same nats-server.

A separate publisher process sends N pre-encoded events as fast as it can; the subscriber side measures received
messages per second from the first to the last. Baseline: a nats-py callback that only counts. Ours: the
aggregator's own NATS callback (`Aggregator.on_message`: decode, apply to the source table, alert rules and SLOs),
on the same subscription settings. Raw and ours alternate, round by round, so drift in machine load hits both.
Both sides (and the publisher) run on the event loop the product runs on (shared/eventloop.py: uvloop unless
INFERWATCH_EVENT_LOOP=asyncio), so the ratio compares callbacks, not loops.

Two loads:
- ``heartbeats`` (the goal): heartbeat snapshots of 1,000 services (~150 B; only a silence rule reads them);
- ``fleet``: full vLLM and LiteLLM snapshots of the recorded fixtures (what the collectors publish, 2-20 KB; every
  vLLM rule and SLO reads them), as a second row: the per-message cost of real traffic.

Beside the rates, each row gives the CPU each process spent per message (publisher, nats-server, subscriber, from
/proc): the publisher, the server and the subscriber share the machine's cores, so a subscriber that spends more
takes CPU from the other two.

Run: .venv/bin/python bench/bench_ingest.py [--messages 200000] [--rounds 3] [--json PATH]
Goal (bench._common.GOALS['ingest']): >= 0.8x the raw rate, on heartbeats.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import report_goal, table, write_json
from inferwatch.shared import eventloop

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (a zombie's too: it is read before the join)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def _fleet_payloads() -> list[tuple[str, bytes]]:
    """``(subject, payload)`` of full snapshots as the collectors make them from the recorded fixtures
    (`tests.support.flood.snapshot_fleet`): 90 vLLM instances and 10 LiteLLM proxies."""
    from inferwatch.contracts import encode, subject_for
    from tests.support.flood import snapshot_fleet

    return [(subject_for(s), encode(s)) for s in snapshot_fleet(vllm=90, litellm=10)]


def _payloads(load: str) -> list[tuple[str, bytes]]:
    if load == "fleet":
        return _fleet_payloads()
    from tests.support.flood import heartbeat_flood

    return heartbeat_flood()


def _publish(url: str, load: str, n: int, ready: Any, go: Any) -> None:
    """In a child process: publish ``n`` events of ``load`` as fast as nats-py can, once ``go`` is set."""
    import nats

    async def run() -> None:
        nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
        payloads = _payloads(load)
        ready.set()
        go.wait()
        publish = nc.publish
        for i in range(n):
            subject, payload = payloads[i % len(payloads)]
            await publish(subject, payload)
        await nc.flush(timeout=60)
        await nc.close()

    eventloop.run(run())


@dataclass
class Round:
    """One subscriber's run: its rate and the CPU microseconds per message of each process."""

    rate: float
    received: int
    publisher_us: float = math.nan
    server_us: float = math.nan
    subscriber_us: float = math.nan


async def _measure(url: str, server_pid: int, load: str, n: int, ours: bool) -> Round:
    import nats

    from inferwatch.contracts import ALL
    from inferwatch.services.aggregator.app import Aggregator
    from inferwatch.services.aggregator.config import AggregatorConfig

    nc = await nats.connect(url)
    received = 0
    first = last = 0.0
    cpu_first = cpu_last = 0.0
    done = asyncio.Event()
    agg = Aggregator(AggregatorConfig())
    on_message = agg.on_message

    async def count(msg: object) -> None:
        nonlocal received, first, last, cpu_first, cpu_last
        if received == 0:
            first, cpu_first = time.perf_counter(), time.process_time()
        received += 1
        if received == n:
            last, cpu_last = time.perf_counter(), time.process_time()
            done.set()

    async def aggregate(msg: object) -> None:
        nonlocal received, first, last, cpu_first, cpu_last
        if received == 0:
            first, cpu_first = time.perf_counter(), time.process_time()
        on_message(msg)  # type: ignore[arg-type]
        received += 1
        if received == n:
            last, cpu_last = time.perf_counter(), time.process_time()
            done.set()

    await nc.subscribe(ALL, cb=aggregate if ours else count, pending_msgs_limit=n + 10, pending_bytes_limit=1 << 30)
    await nc.flush()
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_publish, args=(url, load, n, ready, go))
    proc.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    assert proc.pid is not None
    publisher_start, server_start = _cpu_s(proc.pid), _cpu_s(server_pid)
    go.set()
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:  # messages lost (nats-server cut a slow subscriber): a round without a rate
        print(f"  {load} {'ours' if ours else 'raw'}: {n - received:,} of {n:,} messages never arrived; round dropped")
        return Round(math.nan, received)
    finally:
        publisher_end, server_end = _cpu_s(proc.pid), _cpu_s(server_pid)
        proc.join(30)
        await nc.close()
    if ours:
        assert len(agg.table.sources) == len(_payloads(load)), len(agg.table.sources)
    return Round(
        n / (last - first),
        received,
        (publisher_end - publisher_start) / n * 1e6,
        (server_end - server_start) / n * 1e6,
        (cpu_last - cpu_first) / n * 1e6,
    )


def _median(rounds: list[Round], attr: str) -> float:
    values = [getattr(r, attr) for r in rounds if not math.isnan(r.rate)]
    return statistics.median(values) if values else math.nan


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000, help="heartbeats per round")
    parser.add_argument(
        "--fleet-messages",
        type=int,
        default=1_000,
        help="full snapshots per round (0: no row); ~8 KB each: the default fits nats-server's 64 MB client buffer",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from inferwatch.shared.natsserver import EmbeddedNats

    print(f"event loop: {eventloop.loop_name()} (both sides)")

    loads = {"heartbeats": args.messages, "fleet": args.fleet_messages}
    results: dict[str, dict[str, list[Round]]] = {load: {"raw": [], "ours": []} for load, n in loads.items() if n}
    with EmbeddedNats(jetstream=False) as server:
        assert server.proc is not None
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits both alike
            for load in results:
                for kind in ("raw", "ours"):
                    result = eventloop.run(_measure(server.url, server.proc.pid, load, loads[load], kind == "ours"))
                    results[load][kind].append(result)
    rows: list[dict[str, str]] = []
    ratios: dict[str, float] = {}
    for load, by_kind in results.items():
        for kind, rounds in by_kind.items():
            rows.append(
                {
                    "load": load,
                    "subscriber": "raw nats-py callback" if kind == "raw" else "aggregator on_message",
                    "msg/s (median)": f"{_median(rounds, 'rate'):,.0f}",
                    "runs": ", ".join(f"{r.rate:,.0f}" for r in rounds),
                    "CPU µs/msg pub | server | sub": " | ".join(
                        f"{_median(rounds, part):.2f}" for part in ("publisher_us", "server_us", "subscriber_us")
                    ),
                }
            )
        ratios[load] = _median(by_kind["ours"], "rate") / _median(by_kind["raw"], "rate")
    print(table(rows, ["load", "subscriber", "msg/s (median)", "runs", "CPU µs/msg pub | server | sub"]))
    if "fleet" in ratios:
        print(f"fleet: aggregator vs raw {ratios['fleet']:.2f}x (reported, no goal)")
    raw, ours = (_median(results["heartbeats"][kind], "rate") for kind in ("raw", "ours"))
    if math.isnan(raw) or math.isnan(ours):
        print("no complete heartbeat round for one side: no ratio")
        return 1
    report_goal("ingest", ratios["heartbeats"], f"{ours:,.0f} vs {raw:,.0f} msg/s")
    payload = {
        "messages": loads,
        "event_loop": eventloop.loop_name(),
        "rounds": {
            load: {kind: [vars(r) for r in rs] for kind, rs in by_kind.items()} for load, by_kind in results.items()
        },
        "raw": [r.rate for r in results["heartbeats"]["raw"]],
        "ours": [r.rate for r in results["heartbeats"]["ours"]],
        "ratio": ratios["heartbeats"],
        "fleet_ratio": ratios.get("fleet"),
    }
    print(f"results: {write_json('ingest', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Aggregator ingest of small events vs a raw nats-py subscriber, on the same nats-server.

A separate publisher process sends N pre-encoded heartbeat snapshots (~150 B, 1,000 sources) as fast
as it can; the subscriber side measures received messages per second from the first to the last.
Baseline: a nats-py callback that only counts. Ours: the aggregator's own NATS callback
(`Aggregator.on_message`: decode + apply to the source table), on the same subscription settings.
Both sides (and the publisher) run on the event loop the product runs on (shared/eventloop.py: uvloop unless
INFERWATCH_EVENT_LOOP=asyncio), so the ratio compares callbacks, not loops.

Run: .venv/bin/python bench/bench_ingest.py [--messages 200000] [--json PATH]
Goal (bench._common.GOALS['ingest']): >= 0.8x the raw rate.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import report_goal, table, write_json
from tests.support.flood import publish_flood


async def _measure(url: str, n: int, ours: bool) -> tuple[float, int]:
    import nats

    from inferwatch.contracts import ALL
    from inferwatch.services.aggregator.app import Aggregator
    from inferwatch.services.aggregator.config import AggregatorConfig

    nc = await nats.connect(url)
    received = 0
    first = last = 0.0
    done = asyncio.Event()
    agg = Aggregator(AggregatorConfig())

    async def count(msg: object) -> None:
        nonlocal received, first, last
        if received == 0:
            first = time.perf_counter()
        received += 1
        if received == n:
            last = time.perf_counter()
            done.set()

    async def aggregate(msg: object) -> None:
        nonlocal received, first, last
        if received == 0:
            first = time.perf_counter()
        await agg.on_message(msg)  # type: ignore[arg-type]
        received += 1
        if received == n:
            last = time.perf_counter()
            done.set()

    await nc.subscribe(ALL, cb=aggregate if ours else count, pending_msgs_limit=n + 10, pending_bytes_limit=1 << 30)
    await nc.flush()
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=publish_flood, args=(url, n, ready, go))
    proc.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    go.set()
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:  # messages lost (nats-server cut a slow subscriber): a round without a rate
        print(f"  {'ours' if ours else 'raw'}: {n - received:,} of {n:,} messages never arrived; round dropped")
        return math.nan, received
    finally:
        proc.join(30)
        await nc.close()
    if ours:
        assert len(agg.table.sources) == 1000, len(agg.table.sources)
    return n / (last - first), received


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from inferwatch.shared import eventloop
    from inferwatch.shared.natsserver import EmbeddedNats

    print(f"event loop: {eventloop.loop_name()} (both sides)")

    with EmbeddedNats(jetstream=False) as server:
        rates: dict[str, list[float]] = {"raw": [], "ours": []}
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits both alike
            for kind in ("raw", "ours"):
                rate, _ = eventloop.run(_measure(server.url, args.messages, kind == "ours"))
                rates[kind].append(rate)
    kept = {kind: [r for r in rs if not math.isnan(r)] for kind, rs in rates.items()}
    if not kept["raw"] or not kept["ours"]:
        print("no complete round for one side: no ratio")
        return 1
    raw, ours = statistics.median(kept["raw"]), statistics.median(kept["ours"])
    ratio = ours / raw
    print(
        table(
            [
                {
                    "subscriber": "raw nats-py callback (baseline)",
                    "msg/s (median)": f"{raw:,.0f}",
                    "runs": ", ".join(f"{r:,.0f}" for r in rates["raw"]),
                },
                {
                    "subscriber": "aggregator on_message",
                    "msg/s (median)": f"{ours:,.0f}",
                    "runs": ", ".join(f"{r:,.0f}" for r in rates["ours"]),
                },
            ],
            ["subscriber", "msg/s (median)", "runs"],
        )
    )
    report_goal("ingest", ratio, f"{ours:,.0f} vs {raw:,.0f} msg/s")
    path = write_json(
        "ingest",
        {
            "messages": args.messages,
            "event_loop": eventloop.loop_name(),
            "raw": rates["raw"],
            "ours": rates["ours"],
            "ratio": ratio,
        },
        args.json,
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

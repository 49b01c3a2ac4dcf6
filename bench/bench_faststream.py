"""Per-message cost of a FastStream subscriber vs a raw nats-py callback, both decoding inferwatch events.

Why the aggregator subscribes with raw nats-py (README, "Why raw nats-py"): this is the figure. A separate
publisher process sends N pre-encoded heartbeat snapshots (~150 B msgpack) as fast as it can; the subscriber
measures from the first message to the last. Every subscriber decodes each message into its contract type with
``inferwatch.contracts.decode``, so the difference is the framework's own per-message work:

- baseline: a raw nats-py callback that decodes and counts;
- FastStream as the example ships it (examples/faststream_consumer.py: the contracts' decoder, msgspec binding of
  the typed handler argument, and a logger writing every message at INFO as FastStream does by default, here
  into /dev/null);
- the same with FastStream's per-message logging off (``logger=None``), its cheapest configuration.

Run: .venv/bin/python bench/bench_faststream.py [--messages 20000] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import table, write_json
from tests.support.flood import publish_flood

KINDS = ("raw", "faststream", "faststream-quiet")


async def _flood(url: str, n: int) -> None:
    """Publish ``n`` heartbeats from another process and wait for it to finish."""
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=publish_flood, args=(url, n, ready, go))
    proc.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    go.set()
    await asyncio.get_running_loop().run_in_executor(None, proc.join, 120)


async def _raw(url: str, n: int, on_message: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    import nats

    from inferwatch.contracts import ALL, decode

    nc = await nats.connect(url)

    async def cb(msg: Any) -> None:
        decode(msg.data)
        on_message()

    await nc.subscribe(ALL, cb=cb, pending_msgs_limit=n + 10, pending_bytes_limit=1 << 30)
    await nc.flush()
    return nc.close


async def _faststream(url: str, n: int, on_message: Callable[[], None], quiet: bool) -> Callable[[], Awaitable[None]]:
    from fast_depends.msgspec import MsgSpecSerializer
    from faststream.nats import NatsBroker

    from examples.faststream_consumer import contract, contract_decoder
    from inferwatch.contracts import ALL
    from inferwatch.contracts.heartbeat import Heartbeat

    broker = NatsBroker(url, serializer=MsgSpecSerializer(), logger=None if quiet else _access_log())
    beat = contract(Heartbeat)

    @broker.subscriber(ALL, decoder=contract_decoder, pending_msgs_limit=n + 10, pending_bytes_limit=1 << 30)
    async def handler(event: beat) -> None:  # type: ignore[valid-type]
        on_message()

    await broker.start()
    return broker.stop


def _access_log() -> logging.Logger:
    """FastStream's default: every message logged at INFO, formatted and written (here to /dev/null, not the
    terminal, so the cost is the framework's and not the terminal's)."""
    logger = logging.getLogger("bench.faststream.access")
    if not logger.handlers:
        handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s - %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


async def _measure(url: str, n: int, kind: str) -> float:
    received = 0
    first = last = 0.0
    done = asyncio.Event()

    def on_message() -> None:
        nonlocal received, first, last
        if received == 0:
            first = time.perf_counter()
        received += 1
        if received == n:
            last = time.perf_counter()
            done.set()

    if kind == "raw":
        close = await _raw(url, n, on_message)
    else:
        close = await _faststream(url, n, on_message, quiet=kind == "faststream-quiet")
    try:
        await _flood(url, n)
        await asyncio.wait_for(done.wait(), 300)
    finally:
        await close()
    return n / (last - first)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from inferwatch.shared.natsserver import EmbeddedNats

    with EmbeddedNats(jetstream=False) as server:
        rates: dict[str, list[float]] = {k: [] for k in KINDS}
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits all alike
            for kind in KINDS:
                rates[kind].append(asyncio.run(_measure(server.url, args.messages, kind)))
    median = {k: statistics.median(v) for k, v in rates.items()}
    cost_us = {k: 1e6 / r for k, r in median.items()}
    rows = [
        {
            "subscriber": {
                "raw": "raw nats-py callback + decode (baseline)",
                "faststream": "FastStream, as examples/ ships it",
                "faststream-quiet": "FastStream, logger=None",
            }[k],
            "msg/s (median)": f"{median[k]:,.0f}",
            "us/msg": f"{cost_us[k]:.1f}",
            "cost ratio (of medians)": f"{cost_us[k] / cost_us['raw']:.1f}x",
            "runs": ", ".join(f"{r:,.0f}" for r in rates[k]),
        }
        for k in KINDS
    ]
    print(table(rows, ["subscriber", "msg/s (median)", "us/msg", "cost ratio (of medians)", "runs"]))
    # the ratio of each round (its three runs back to back), then the median: load drifting between rounds on a
    # shared machine moves all three runs of a round alike
    ratio = statistics.median(r / f for r, f in zip(rates["raw"], rates["faststream"], strict=True))
    quiet = statistics.median(r / f for r, f in zip(rates["raw"], rates["faststream-quiet"], strict=True))
    print(
        f"ratio FastStream per-message cost {ratio:.1f}x raw nats-py ({quiet:.1f}x with logger=None); "
        "median of the per-round ratios"
    )
    path = write_json(
        "faststream",
        {"messages": args.messages, **{k: rates[k] for k in KINDS}, "ratio": ratio, "ratio_quiet": quiet},
        args.json,
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

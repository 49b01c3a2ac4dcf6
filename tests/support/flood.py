"""A flood of small events for load tests and benchmarks: heartbeats of 1000 distinct instances."""

from __future__ import annotations

from typing import Any

from inferwatch.contracts import encode, subject_for
from inferwatch.contracts.heartbeat import Heartbeat


def heartbeat_flood(count: int = 1000, interval_s: float = 60.0) -> list[tuple[str, bytes]]:
    """``(subject, payload)`` of ``count`` heartbeats, one per instance; ``interval_s`` keeps them from expiring."""
    beats = [
        Heartbeat(
            source=f"svc-{i}@host:{i}",
            observed_at=1795000000.0 + i,
            collector=f"svc-{i}@host:{i}",
            interval_s=interval_s,
            service="vllm-scraper",
            version="0.1.0",
            started_at=1795000000.0,
            ready=True,
            reason="scraping 12 vLLM targets",
            targets=12,
        )
        for i in range(count)
    ]
    return [(subject_for(beat), encode(beat)) for beat in beats]


def publish_flood(url: str, n: int, ready: Any, go: Any) -> None:
    """In a child process: publish ``n`` heartbeats of `heartbeat_flood` to ``url`` as fast as nats-py can, once
    ``go`` is set (``ready`` says the connection is up); ``ready`` and ``go`` are multiprocessing events."""
    import nats

    async def run() -> None:
        nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
        payloads = heartbeat_flood()
        ready.set()
        go.wait()
        for i in range(n):
            subject, payload = payloads[i % len(payloads)]
            await nc.publish(subject, payload)
        await nc.flush(timeout=60)
        await nc.close()

    from inferwatch.shared import eventloop

    eventloop.run(run())  # the loop a publishing service would run on

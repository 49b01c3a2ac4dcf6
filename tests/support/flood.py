"""A flood of small events for load tests and benchmarks: heartbeats of 1000 distinct instances."""

from __future__ import annotations

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

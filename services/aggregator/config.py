"""Aggregator settings (``INFERWATCH_AGGREGATOR_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from inferwatch.contracts.subjects import ALL
from inferwatch.shared.settings import Env


@dataclass(frozen=True)
class AggregatorConfig:
    """Attributes:
    subject: what to consume (``INFERWATCH_AGGREGATOR_SUBJECT``, default every version of every event).
    expiry_intervals: a source expires after this many intervals of silence.
    tombstone_s: how long an expired source stays visible as ``inferwatch_source_up 0``.
    max_sources: cap on live sources (beyond it new sources are dropped and counted).
    sweep_interval_s: how often expiry runs.
    economics_file: YAML with GPU-hour and kWh prices for the unit economics per model
        (schema: `services.aggregator.economics.EconomicsFile`); ``""``: no prices, no cost figures.
    ingest_thread: consume NATS on a thread with its own connection and event loop
        (``INFERWATCH_AGGREGATOR_INGEST_THREAD``), so ``/metrics`` and ``/readyz`` never wait behind an
        ingest backlog (`services.aggregator.ingest`); false: one event loop for both.
    render_priority: with the ingest thread, pause it while an HTTP request is being served
        (``INFERWATCH_AGGREGATOR_RENDER_PRIORITY``), so the request runs at idle speed and messages wait
        in the NATS client's pending queue (`services.aggregator.ingest.RenderGate`).
    prerender_s: with the ingest thread, render the sources that changed on that thread every this many seconds
        (``INFERWATCH_AGGREGATOR_PRERENDER_S``; 0: off, a scrape renders them); a scrape then shows a changed
        source's series as rendered at most ``2 * prerender_s`` earlier (`app.STALE_PRERENDERS`).
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_AGGREGATOR_"

    subject: str = ALL
    expiry_intervals: float = 3.0
    tombstone_s: float = 600.0
    max_sources: int = 100_000
    sweep_interval_s: float = 0.5
    economics_file: str = ""
    ingest_thread: bool = True
    render_priority: bool = True
    prerender_s: float = 1.0

    @classmethod
    def from_env(cls, env: Env) -> AggregatorConfig:
        """Read ``INFERWATCH_AGGREGATOR_*``."""
        p = cls.ENV_PREFIX
        return cls(
            subject=env.get(p + "SUBJECT", cls.subject),
            expiry_intervals=env.float(p + "EXPIRY_INTERVALS", cls.expiry_intervals),
            tombstone_s=env.float(p + "TOMBSTONE_S", cls.tombstone_s),
            max_sources=env.int(p + "MAX_SOURCES", cls.max_sources),
            sweep_interval_s=env.float(p + "SWEEP_INTERVAL_S", cls.sweep_interval_s),
            economics_file=env.get(p + "ECONOMICS_FILE", cls.economics_file),
            ingest_thread=env.bool(p + "INGEST_THREAD", cls.ingest_thread),
            render_priority=env.bool(p + "RENDER_PRIORITY", cls.render_priority),
            prerender_s=env.float(p + "PRERENDER_S", cls.prerender_s),
        )

"""The alert stream's I/O edges: publish `Alert` transitions on NATS and forward them to Alertmanager.

Settings (``INFERWATCH_AGGREGATOR_*``):
    RULES_FILE: user rules (same schema as rules/default.yaml), merged over the defaults by name.
    ALERTMANAGER_URL: base URL of an Alertmanager (``http://alertmanager:9093``); empty = no forwarding.
    ALERTMANAGER_RESEND_S: how often firing alerts are re-sent (Alertmanager expires silent ones), 60.
    ALERTS_TICK_S: how often ``for`` durations and silent sources are checked, 1.
    ALERT_STREAM: a JetStream stream to publish transitions into, once each however many aggregator
        replicas run (``INFERWATCH_ALERTS`` for an HA pair; see `alert_stream`); empty = plain publishes.
    SLO_FILE: the service-level objectives (schema of rules/slos.yaml, see `slo`), replacing the shipped ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from inferwatch.contracts.alert import Alert
from inferwatch.services.aggregator.alert_stream import AlertStream
from inferwatch.services.aggregator.config import AggregatorConfig
from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE, AlertEngine, AlertSource, load_rules
from inferwatch.services.aggregator.slo import DEFAULT_SLO_FILE, SloEvaluator, load_slos
from inferwatch.shared.bus import Bus
from inferwatch.shared.settings import Env

log = logging.getLogger("inferwatch.aggregator.alerts")

_MAX_QUEUE = 10_000


@dataclass(frozen=True)
class AlertingConfig:
    """See the module docstring."""

    rules_file: str = ""
    alertmanager_url: str = ""
    resend_s: float = 60.0
    tick_s: float = 1.0
    generator_url: str = ""
    stream: str = ""
    slo_file: str = ""

    @classmethod
    def from_env(cls, env: Env) -> AlertingConfig:
        """Read the aggregator's alerting settings (under its one prefix, ``INFERWATCH_AGGREGATOR_``)."""
        p = AggregatorConfig.ENV_PREFIX
        return cls(
            rules_file=env.get(p + "RULES_FILE"),
            alertmanager_url=env.get(p + "ALERTMANAGER_URL").rstrip("/"),
            resend_s=env.float(p + "ALERTMANAGER_RESEND_S", cls.resend_s),
            tick_s=env.float(p + "ALERTS_TICK_S", cls.tick_s),
            generator_url=env.get(p + "PUBLIC_URL"),
            stream=env.get(p + "ALERT_STREAM"),
            slo_file=env.get(p + "SLO_FILE"),
        )

    def engine(self, expiry_intervals: float = 3.0, extensions: Iterable[AlertSource] = ()) -> AlertEngine:
        """The engine with the shipped defaults plus the user's rules file (and other alert sources)."""
        paths: list[Path | str] = [DEFAULT_RULES_FILE]
        if self.rules_file:
            paths.append(self.rules_file)
        return AlertEngine(load_rules(*paths), expiry_intervals=expiry_intervals, extensions=extensions)

    def slos(self) -> SloEvaluator:
        """The SLO evaluator: the shipped objectives, or the user's file instead."""
        return SloEvaluator(load_slos(self.slo_file or DEFAULT_SLO_FILE))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def alertmanager_payload(alerts: Iterable[Alert], generator_url: str = "") -> list[dict[str, Any]]:
    """Alertmanager API v2 ``postableAlerts`` for these alerts (resolved ones carry ``endsAt``)."""
    body = []
    for alert in alerts:
        item: dict[str, Any] = {
            "labels": {"alertname": alert.name, "severity": alert.severity, **alert.labels},
            "annotations": dict(alert.annotations),
            "startsAt": _iso(alert.starts_at),
        }
        if alert.state == "resolved":
            item["endsAt"] = _iso(alert.ends_at)
        if generator_url:
            item["generatorURL"] = generator_url
        body.append(item)
    return body


class AlertDispatcher:
    """Queues transitions from the hot path; a background task publishes and forwards them."""

    def __init__(self, engine: AlertEngine, config: AlertingConfig, lock: threading.Lock | None = None) -> None:
        self.engine = engine
        self._lock = lock or threading.Lock()  # held while the engine is read here (ingest may run on a thread)
        self.config = config
        self._queue: asyncio.Queue[Alert] | None = None
        self.published = 0
        self.dropped = 0
        self.forward_errors = 0
        self.forwarded = 0
        self.stream: AlertStream | None = None
        self._last_resend = 0.0

    def _q(self) -> asyncio.Queue[Alert]:
        if self._queue is None:
            self._queue = asyncio.Queue(_MAX_QUEUE)
        return self._queue

    def submit(self, alerts: Iterable[Alert]) -> None:
        """Hand transitions over (never blocks; a full queue drops and counts)."""
        q = self._q()
        for alert in alerts:
            try:
                q.put_nowait(alert)
            except asyncio.QueueFull:
                self.dropped += 1

    async def run(self, bus: Bus, stop: asyncio.Event) -> None:
        """Publish queued transitions; tick the engine; forward to Alertmanager; until ``stop``."""
        q = self._q()
        if self.config.stream:
            await self._open_stream(bus)
        client = httpx.AsyncClient(timeout=5.0) if self.config.alertmanager_url else None
        try:
            while not stop.is_set():
                batch: list[Alert] = []
                with contextlib.suppress(TimeoutError):
                    batch.append(await asyncio.wait_for(q.get(), self.config.tick_s))
                while not q.empty():
                    batch.append(q.get_nowait())
                with self._lock:
                    batch.extend(self.engine.tick(time.time()))
                for alert in batch:
                    try:
                        if await self._publish(bus, alert):
                            self.published += 1
                    except Exception as exc:  # the alert loop must outlive a broken connection
                        self.dropped += 1
                        log.warning("alert publish failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
                    log.info("alert %s", alert.state, extra={"alert": alert.name, "labels": alert.labels})
                if client is not None:
                    now = time.monotonic()
                    if now - self._last_resend >= self.config.resend_s:
                        self._last_resend = now
                        with self._lock:
                            firing = self.engine.firing()
                        batch = [*batch, *(a for a in firing if a not in batch)]
                    if batch:
                        await self._forward(client, batch)
        finally:
            if client is not None:
                await client.aclose()

    async def _open_stream(self, bus: Bus) -> None:
        try:
            self.stream = await AlertStream.open(bus, self.config.stream)
        except Exception as exc:  # JetStream off or refused: nats-py raises several types
            log.warning(
                "alert stream unavailable; publishing transitions without deduplication",
                extra={"stream": self.config.stream, "error": f"{type(exc).__name__}: {exc}"[:200]},
            )

    async def _publish(self, bus: Bus, alert: Alert) -> bool:
        if self.stream is not None:
            return await self.stream.publish(alert)
        return await bus.publish(alert)

    async def _forward(self, client: httpx.AsyncClient, alerts: list[Alert]) -> None:
        url = self.config.alertmanager_url + "/api/v2/alerts"
        try:
            response = await client.post(url, json=alertmanager_payload(alerts, self.config.generator_url))
            response.raise_for_status()
            self.forwarded += len(alerts)
        except httpx.HTTPError as exc:
            self.forward_errors += 1
            log.warning("alertmanager forwarding failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})

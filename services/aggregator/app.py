"""The aggregator's I/O edges: consume every event from NATS, serve ``/metrics``.

The NATS callback is the hot path: decode, hand to the `SourceTable`, nothing else. Rendering
happens lazily at scrape time, and only for sources that changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from nats.aio.msg import Msg

from inferwatch.contracts import DecodeError, decode
from inferwatch.contracts.alert import Alert
from inferwatch.services.aggregator.alert_dispatch import AlertDispatcher, AlertingConfig
from inferwatch.services.aggregator.config import AggregatorConfig
from inferwatch.services.aggregator.domains import all_renderers
from inferwatch.services.aggregator.domains.economics import render_economics
from inferwatch.services.aggregator.economics import EconomicsTracker, load_economics
from inferwatch.services.aggregator.ingest import IngestThread, RenderGate
from inferwatch.services.aggregator.render import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Family,
    SeriesWriter,
    label_block,
    render_exposition,
    wants_openmetrics,
)
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.aggregator.status_page import status_routes
from inferwatch.shared.bus import Bus
from inferwatch.shared.log import RateLimitedLog
from inferwatch.shared.service import ServiceApp, ServiceContext

log = logging.getLogger("inferwatch.aggregator")

EVENTS = Family("inferwatch_aggregator_events", "counter", "Events ingested, by domain and kind.")
DECODE_ERRORS = Family(
    "inferwatch_aggregator_decode_errors", "counter", "Messages that were not valid events, by subject prefix."
)
DROPPED = Family("inferwatch_aggregator_dropped", "counter", "Events dropped, by reason.")
RENDER_ERRORS = Family("inferwatch_aggregator_render_errors", "counter", "Snapshots that failed to render.")
EXPIRED = Family("inferwatch_aggregator_expired_sources", "counter", "Sources expired after going silent.")
SOURCES = Family("inferwatch_aggregator_sources", "gauge", "Live sources held.")
SCRAPE_SECONDS = Family(
    "inferwatch_aggregator_render_duration_seconds", "gauge", "How long the previous /metrics render took."
)
RENDER_CPU = Family(
    "inferwatch_aggregator_render_cpu_seconds",
    "gauge",
    "CPU time of the previous /metrics render on its thread (its wall time less the waits: CPU, GIL, lock).",
)
BUS_CONNECTED = Family("inferwatch_aggregator_nats_connected", "gauge", "1 when connected to NATS.")
BUS_DISCONNECTS = Family(
    "inferwatch_aggregator_nats_disconnects",
    "counter",
    "Times the NATS connection was lost (a server cutting a slow consumer shows up here; "
    "what it held for us is lost and counted only in the server's /varz).",
)

# A scrape renders again a changed source whose body is older than this many pre-render periods (the ingest thread
# fell behind): what /metrics shows is never older than that.
STALE_PRERENDERS = 2.0
_MAX_PREFIXES = 200  # bound on the decode-error label values
_monotonic = time.monotonic  # (module globals: the NATS callback runs once per message)
_wall_clock = time.time


def _subject_prefix(subject: str) -> str:
    return ".".join(subject.split(".", 4)[:4])


class Aggregator:
    """Holds the table and wires it to the bus and HTTP."""

    def __init__(
        self, config: AggregatorConfig, ctx: ServiceContext | None = None, alerting: AlertingConfig | None = None
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.table = SourceTable(
            all_renderers(),
            expiry_intervals=config.expiry_intervals,
            tombstone_s=config.tombstone_s,
            max_sources=config.max_sources,
        )
        self._rate_log = RateLimitedLog(60.0)
        self._last_render_s = 0.0
        self._last_render_cpu_s = 0.0
        alerting = alerting or AlertingConfig()
        self.slos = alerting.slos()
        self.alerts = alerting.engine(config.expiry_intervals, extensions=[self.slos])
        # Guards every piece of state the ingest path writes (table, engine, SLOs) when ingest runs on its own
        # thread (`services.aggregator.ingest`); uncontended, and so nearly free, on one event loop.
        self.lock = threading.Lock()
        self.ingest: IngestThread | None = None
        # Render priority: the ingest thread pauses while a request is served (`ingest.RenderGate`).
        self.gate = RenderGate() if config.ingest_thread and config.render_priority else None
        self.alert_dispatcher = AlertDispatcher(self.alerts, alerting, self.lock)
        self.submit_alerts: Callable[[Iterable[Alert]], None] = self.alert_dispatcher.submit
        self.economics = EconomicsTracker(load_economics(config.economics_file))

    def on_message(self, msg: Msg) -> None:
        """Handle one NATS message: decode and apply; never raises (a plain function: nothing in it waits, and a
        coroutine per message is a measurable share of the ingest path's cost)."""
        try:
            event = decode(msg.data)
        except DecodeError as exc:
            self._decode_error(msg.subject, str(exc))
            return
        self.table.apply(event, _monotonic())
        if type(event) is not Alert:
            transitions = self.alerts.on_event(event, _wall_clock())
            if transitions:
                self.submit_alerts(transitions)

    def _decode_error(self, subject: str, error: str) -> None:
        errors = self.table.stats.decode_errors
        prefix = _subject_prefix(subject)
        if prefix not in errors and len(errors) >= _MAX_PREFIXES:
            prefix = "other"
        errors[prefix] = errors.get(prefix, 0) + 1
        allowed, suppressed = self._rate_log.allow(subject)
        if allowed:
            log.warning(
                "undecodable message", extra={"subject": subject, "error": error[:200], "suppressed": suppressed}
            )

    def sweep(self) -> None:
        """Expire silent sources; sample the unit economics when a tick is due."""
        now = time.monotonic()
        for entry in self.table.expire(now):
            log.info("source expired", extra={"type": entry.tag, "source": entry.event.source})
        if self.economics.due(now):
            self.economics.observe([entry.event for entry in self.table.sources.values()], now)

    @property
    def ingest_bus(self) -> Bus | None:
        """The connection events arrive on (the ingest thread's, else the service's)."""
        if self.ingest is not None:
            return self.ingest.bus
        return self.ctx.bus if self.ctx is not None else None

    def self_metrics(self) -> Mapping[Family, str]:
        """The aggregator's own series."""
        stats = self.table.stats
        bus = self.ingest_bus
        w = SeriesWriter()
        for tag, count in sorted(stats.events.items()):
            domain, kind = tag.split(".", 1)
            w.counter(EVENTS, label_block({"domain": domain, "kind": kind}), count)
        for prefix, count in sorted(stats.decode_errors.items()):
            w.counter(DECODE_ERRORS, label_block({"subject_prefix": prefix}), count)
        for reason in ("out_of_order", "max_sources", "slow_consumer"):
            value = stats.dropped.get(reason, 0)
            if reason == "slow_consumer" and bus is not None:
                value = bus.stats.slow_consumer_drops
            w.counter(DROPPED, label_block({"reason": reason}), value)
        for tag, count in sorted(stats.render_errors.items()):
            w.counter(RENDER_ERRORS, label_block({"type": tag}), count)
        w.counter(EXPIRED, "", stats.expired)
        w.gauge(SOURCES, "", len(self.table.sources))
        w.gauge(SCRAPE_SECONDS, "", self._last_render_s)
        w.gauge(RENDER_CPU, "", self._last_render_cpu_s)
        if bus is not None:
            w.gauge(BUS_CONNECTED, "", 1.0 if bus.connected else 0.0)
            w.counter(BUS_DISCONNECTS, "", bus.stats.disconnects)
        return w.freeze()

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole ``/metrics`` body."""
        start, cpu = time.perf_counter(), time.thread_time()
        chunks = [
            self.self_metrics(),
            render_economics(self.economics.figures()),
            self.slos.metrics(time.time()),
            *self.table.rendered(self.stale_s),
        ]
        body = render_exposition(chunks, openmetrics=openmetrics)
        self._last_render_s = time.perf_counter() - start
        self._last_render_cpu_s = time.thread_time() - cpu
        return body

    def prerender(self, deadline: float) -> bool:
        """Render sources that changed, until ``deadline`` (monotonic; on the ingest thread, under the lock);
        whether some are left."""
        return self.table.render_changed(deadline, time.monotonic)

    @property
    def stale_s(self) -> float:
        """How old a changed source's body may be on ``/metrics``: 0 (always fresh) unless the ingest thread
        pre-renders, then `STALE_PRERENDERS` pre-render periods."""
        if self.ingest is None or self.config.prerender_s <= 0:
            return 0.0
        return STALE_PRERENDERS * self.config.prerender_s

    async def metrics_handler(self, request: web.Request) -> web.Response:
        """``GET /metrics`` with content negotiation (OpenMetrics when the scraper asks for it).

        The body is written after the handler returns, outside `gated`: the ingest thread does not wait for a
        slow client to read megabytes (measured: with the write under the gate, the snapshot flood was cut)."""
        om = wants_openmetrics(request.headers.get("Accept", ""))
        with self.lock:
            self.sweep()
            body = self.render(om)
        return web.Response(body=body, headers={"Content-Type": OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE})

    @web.middleware
    async def gated(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Serve every request with the ingest thread paused (render priority), when the gate is on."""
        if self.gate is None:
            return await handler(request)
        with self.gate.hold():
            return await handler(request)


async def run(ctx: ServiceContext, aggregator: Aggregator) -> None:
    """Subscribe (on the ingest thread, or this loop) and sweep until stopped."""
    config = aggregator.config
    consuming = f"consuming {config.subject}"
    if config.ingest_thread:
        loop = asyncio.get_running_loop()
        dispatcher = aggregator.alert_dispatcher
        # The dispatcher's queue belongs to this loop: transitions cross threads through it.

        def submit_from_ingest(alerts: Iterable[Alert]) -> None:
            loop.call_soon_threadsafe(dispatcher.submit, list(alerts))

        aggregator.submit_alerts = submit_from_ingest
        ingest = IngestThread(
            ctx.bus.settings,
            f"{ctx.instance}-ingest",
            config.subject,
            aggregator.on_message,
            aggregator.lock,
            gate=aggregator.gate,
            prerender=aggregator.prerender,
            prerender_s=config.prerender_s,
        )
        aggregator.ingest = ingest
    else:

        async def on_message(msg: Msg) -> None:  # (nats-py calls coroutine functions)
            aggregator.on_message(msg)

        await ctx.bus.subscribe_raw(config.subject, on_message)
    alerts_task = asyncio.create_task(aggregator.alert_dispatcher.run(ctx.bus, ctx.stop))
    try:
        if aggregator.ingest is not None:
            await aggregator.ingest.start()
        ctx.set_ready(True, consuming)
        while not await ctx.sleep(config.sweep_interval_s):
            with aggregator.lock:
                aggregator.sweep()
            if aggregator.ingest is not None:  # /readyz reads the service's connection; events come on this one
                bus = aggregator.ingest.bus
                ctx.set_ready(bus.connected, consuming if bus.connected else f"ingest: {bus.status}")
    finally:
        alerts_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await alerts_task
        if aggregator.ingest is not None:
            await aggregator.ingest.stop()


def build(ctx: ServiceContext, config: AggregatorConfig) -> ServiceApp:
    """The aggregator: its ``/metrics`` replaces the default service one; ``/`` is the status page."""
    aggregator = Aggregator(config, ctx, AlertingConfig.from_env(ctx.env))
    return ServiceApp(
        run=lambda: run(ctx, aggregator),
        routes=[web.get("/metrics", aggregator.metrics_handler), *status_routes(aggregator)],
        middlewares=[aggregator.gated],
    )

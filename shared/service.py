"""The common anatomy of every inferwatch service.

`run_service` gives a service: settings from the environment, structured logs, an HTTP server with
``/healthz`` (the process lives), ``/readyz`` (it is doing its job, or why not) and ``/metrics`` (its
own metrics), a NATS connection that retries until it works, a heartbeat on
``inferwatch.v1.heartbeat.service.<instance>``, and a graceful stop on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from contracts.heartbeat import Heartbeat
from contracts.upstream import EndpointCalls, UpstreamCallStats
from shared.bus import Bus, BusSettings
from shared.log import configure_logging
from shared.settings import Env

VERSION = "0.1.0"
log = logging.getLogger("inferwatch.service")


def instance_id(service: str) -> str:
    """``<service>@<host>:<pid>``: unique per process, readable in logs and heartbeats."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


def env_prefix(service: str) -> str:
    """``vllm-scraper`` → ``INFERWATCH_VLLM_SCRAPER_``."""
    return "INFERWATCH_" + service.upper().replace("-", "_") + "_"


@dataclass
class ServiceContext:
    """What a service's main coroutine gets: its settings, bus, registry and readiness switch."""

    name: str
    env: Env
    bus: Bus
    registry: CollectorRegistry
    stop: asyncio.Event
    instance: str
    heartbeat_interval_s: float = 5.0
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    reason: str = "starting"
    targets: int = 0

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Report readiness on ``/readyz`` and in the heartbeat."""
        if (ready, reason) != (self.ready, self.reason):
            log.info("readiness changed", extra={"ready": ready, "reason": reason})
        self.ready, self.reason = ready, reason

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when the service should stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()


class _BusCollector(Collector):
    """Exports the bus counters on the service's own ``/metrics``."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._ctx.bus.stats
        for name, value, doc in (
            ("published", stats.published, "Events published."),
            ("publish_dropped", stats.dropped, "Events dropped: outbound buffer full or no connection."),
            ("reconnects", stats.reconnects, "Reconnections to NATS."),
            ("decode_errors", stats.decode_errors, "Received messages that were not valid events."),
            ("slow_consumer_drops", stats.slow_consumer_drops, "Times NATS dropped messages for a slow subscriber."),
        ):
            yield CounterMetricFamily(f"inferwatch_bus_{name}", doc, value=value)
        yield GaugeMetricFamily("inferwatch_bus_connected", "1 when connected to NATS.",
                                value=1.0 if self._ctx.bus.connected else 0.0)
        yield GaugeMetricFamily("inferwatch_service_ready", "1 when the service is ready.",
                                value=1.0 if self._ctx.ready else 0.0)


MainFn = Callable[[ServiceContext], Coroutine[Any, Any, None]]
RoutesFn = Callable[[ServiceContext], list[web.RouteDef]]


def _http_app(ctx: ServiceContext, extra_routes: list[web.RouteDef]) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": ctx.name})

    async def readyz(_: web.Request) -> web.Response:
        ready = ctx.ready and ctx.bus.connected
        reason = ctx.reason if ctx.bus.connected else ctx.bus.status
        body = {"ready": ready, "reason": reason, "service": ctx.name, "nats": ctx.bus.status}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(ctx.registry)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app = web.Application()
    overridden = {r.path for r in extra_routes if isinstance(r, web.RouteDef)}
    defaults = [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
    app.add_routes([r for r in defaults if r.path not in overridden] + extra_routes)
    return app


def upstream_call_stats(ctx: ServiceContext) -> UpstreamCallStats | None:
    """This process's cumulative upstream call outcomes, read from its own registry (None: no upstreams)."""
    outcomes: dict[tuple[str, str], dict[str, float]] = {}
    durations: dict[tuple[str, str], float] = {}
    circuits: dict[str, str] = {}
    for family in ctx.registry.collect():
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("api", ""), labels.get("endpoint", ""))
            if sample.name == "inferwatch_upstream_requests_total":
                outcomes.setdefault(key, {})[labels.get("outcome", "")] = sample.value
            elif sample.name == "inferwatch_upstream_request_duration_seconds_sum":
                durations[key] = sample.value
            elif sample.name == "inferwatch_upstream_circuit_state":
                circuits[labels.get("api", "")] = _CIRCUIT_STATES.get(int(sample.value), "unknown")
    if not outcomes:
        return None
    now = time.time()
    return UpstreamCallStats(
        source=ctx.instance, observed_at=now, collector=ctx.instance, interval_s=ctx.heartbeat_interval_s,
        service=ctx.name,
        endpoints=[EndpointCalls(api=api, endpoint=endpoint, outcomes=by_outcome,
                                 duration_sum_s=durations.get((api, endpoint), 0.0))
                   for (api, endpoint), by_outcome in sorted(outcomes.items())],
        circuits=circuits,
    )


_CIRCUIT_STATES = {0: "closed", 1: "half_open", 2: "open"}


async def _heartbeat_loop(ctx: ServiceContext) -> None:
    while not ctx.stop.is_set():
        if ctx.bus.connected and (stats := upstream_call_stats(ctx)) is not None:
            await ctx.bus.publish(stats)
        if ctx.bus.connected:
            await ctx.bus.publish(
                Heartbeat(
                    source=ctx.instance,
                    observed_at=time.time(),
                    collector=ctx.instance,
                    interval_s=ctx.heartbeat_interval_s,
                    service=ctx.name,
                    version=VERSION,
                    started_at=ctx.started_at,
                    ready=ctx.ready,
                    reason=ctx.reason,
                    targets=ctx.targets,
                )
            )
        if await ctx.sleep(ctx.heartbeat_interval_s):
            return


async def run_service(
    name: str,
    main: MainFn,
    *,
    default_port: int,
    routes: RoutesFn | None = None,
    env: Env | None = None,
) -> None:
    """Run one service until SIGTERM/SIGINT (or ``ctx.stop``), then shut down in order.

    Order: HTTP up first (so ``/healthz`` answers while NATS is still being reached), then the bus
    (retried with backoff), then the heartbeat and the service's ``main``. On stop: ``main`` is
    cancelled if it does not return within 5 s, buffered publishes are flushed, the bus drained.
    """
    env = env or Env()
    prefix = env_prefix(name)
    configure_logging(name, level=env.get("INFERWATCH_LOG_LEVEL", "info"),
                      fmt=env.get("INFERWATCH_LOG_FORMAT", "json"))
    registry = CollectorRegistry()
    inst = instance_id(name)
    ctx = ServiceContext(
        name=name,
        env=env,
        bus=Bus(BusSettings.from_env(env), name=inst),
        registry=registry,
        stop=asyncio.Event(),
        instance=inst,
        heartbeat_interval_s=env.float("INFERWATCH_HEARTBEAT_INTERVAL_S", 5.0),
    )
    registry.register(_BusCollector(ctx))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, ctx.stop.set)

    host = env.get(prefix + "HOST", env.get("INFERWATCH_HTTP_HOST", "127.0.0.1"))
    port = env.int(prefix + "PORT", default_port)
    runner = web.AppRunner(_http_app(ctx, routes(ctx) if routes else []), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("http listening", extra={"url": f"http://{host}:{_bound_port(runner) or port}"})

    connect = asyncio.create_task(ctx.bus.connect(stop=ctx.stop), name=f"{name}-connect")
    tasks: list[asyncio.Task[None]] = []
    try:
        stop_wait = asyncio.create_task(ctx.stop.wait())
        await asyncio.wait({connect, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if ctx.stop.is_set() or connect.cancelled() or connect.exception() is not None:
            return
        tasks = [asyncio.create_task(main(ctx), name=f"{name}-main"),
                 asyncio.create_task(_heartbeat_loop(ctx), name=f"{name}-heartbeat")]
        stopper = asyncio.create_task(ctx.stop.wait())
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                log.error("service task failed", exc_info=task.exception())
    finally:
        # Reached on a clean stop and on cancellation alike: nothing of ours may outlive this.
        ctx.stop.set()
        connect.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
        await asyncio.gather(connect, *tasks, return_exceptions=True)
        await ctx.bus.close()
        await runner.cleanup()
        log.info("stopped")


def _bound_port(runner: web.AppRunner) -> int | None:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    return None


def main_entry(name: str, main: MainFn, *, default_port: int, routes: RoutesFn | None = None) -> None:
    """Console entry: run the service and exit 0 on a clean stop."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_service(name, main, default_port=default_port, routes=routes))

"""vllm-scraper's I/O edges: scrape each target's endpoints, publish one snapshot per target per interval."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.discovery import ScrapeTarget, TargetFound, TargetLost, TargetSet
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.subjects import subject_filter
from inferwatch.contracts.vllm import VllmInstanceSnapshot, VllmModelCard, VllmModelLoaded
from inferwatch.services.vllm_scraper.config import VllmScraperConfig
from inferwatch.services.vllm_scraper.core import model_status, read_instance, rendezvous_owner, spread_offset
from inferwatch.shared.dns import Resolver, resolve_dns, resolve_specs
from inferwatch.shared.http import (
    BreakerPolicy,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
    strip_credentials,
)
from inferwatch.shared.service import ServiceApp, ServiceContext, heartbeat_subject_prefix

log = logging.getLogger("inferwatch.vllm_scraper")

METADATA_TTL_S = 60.0


@dataclass
class TargetState:
    """What the scraper remembers about one target between scrapes."""

    target: ScrapeTarget
    client: UpstreamClient | None  # None for gRPC targets (``grpc://``, ``grpcs://``)
    status: str = "loading"
    loading_since: float | None = None
    load_duration_s: float | None = None
    errors_total: dict[str, float] = field(default_factory=dict)
    origins: set[str] = field(default_factory=set)
    in_flight: bool = False

    source: str = ""  # the URL as events and labels may show it (no userinfo, query, fragment); set once

    def __post_init__(self) -> None:
        self.source = strip_credentials(self.target.url)


GRPC_SCHEMES = ("grpc://", "grpcs://")


def _tls_context(ca_file: str) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or ``ca_file``/``ca_dir`` when given."""
    if ca_file and os.path.isdir(ca_file):
        return ssl.create_default_context(capath=ca_file)
    return ssl.create_default_context(cafile=ca_file or None)


async def grpc_health(url: str, timeout_s: float, ca_file: str = "", insecure: bool = False) -> tuple[bool, str]:
    """``grpc.health.v1.Health/Check`` (service ``""``): (serving, status name or ``grpc_<code>`` on failure).

    ``grpcs://`` uses TLS with verification (custom CA from ``ca_file``); ``grpc://`` is plaintext.
    """
    import grpc  # type: ignore[import-untyped]
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    secure = url.startswith("grpcs://")
    address = url.split("://", 1)[1].rstrip("/")
    if secure and not insecure:
        root = None
        if ca_file:
            with open(ca_file, "rb") as f:  # noqa: ASYNC230 - a small CA file, read once per check
                root = f.read()
        channel = grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root))
    else:
        channel = grpc.aio.insecure_channel(address)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        return False, "grpc_" + exc.code().name.lower()
    finally:
        await channel.close()
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status).lower()
    return response.status == health_pb2.HealthCheckResponse.SERVING, name


class VllmScraper:
    """Owns the target set and scrapes it."""

    def __init__(self, config: VllmScraperConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.metrics = UpstreamMetrics(ctx.registry)
        self.targets: dict[str, TargetState] = {}
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self.peers: dict[str, float] = {}  # other live replicas: instance -> monotonic expiry
        self.resolver: Resolver = resolve_dns
        self.running = False
        self._tasks: set[asyncio.Task[None]] = set()
        # One TLS context for every target (verification on unless explicitly disabled): building one per
        # client loads the CA bundle each time, seconds of CPU for a thousand targets.
        self._tls: ssl.SSLContext | bool = False if config.insecure else _tls_context(config.tls_ca_file)
        for url in config.targets:
            self.add(ScrapeTarget(kind="vllm", url=url), "static")

    # ---- sharding ---------------------------------------------------------------------------

    def replicas(self) -> list[str]:
        """Live scraper replicas (this one included), from their heartbeats."""
        now = time.monotonic()
        for peer in [p for p, expiry in self.peers.items() if expiry <= now]:
            del self.peers[peer]
        return sorted({self.ctx.instance, *self.peers})

    def owns(self, url: str, replicas: list[str] | None = None) -> bool:
        """Whether this replica scrapes ``url`` (always, without sharding)."""
        if not self.config.shard:
            return True
        return rendezvous_owner(url, replicas if replicas is not None else self.replicas()) == self.ctx.instance

    async def on_heartbeat(self, event: AnyEvent, _subject: str) -> None:
        """Track the other replicas of this service."""
        if isinstance(event, Heartbeat) and event.service == self.ctx.name and event.source != self.ctx.instance:
            self.peers[event.source] = time.monotonic() + self.config.peer_expiry_intervals * max(event.interval_s, 0.1)

    # ---- the target set ---------------------------------------------------------------------

    def add(self, target: ScrapeTarget, origin: str = "static") -> None:
        """Start scraping a target (or refresh its container metadata); ``origin`` says who asked."""
        url = target.url.rstrip("/")
        state = self.targets.get(url)
        if state is not None:
            state.target = target if target.container_id or not state.target.container_id else state.target
            state.origins.add(origin)
            return
        headers = {"Authorization": f"Bearer {self.config.api_key.reveal()}"} if self.config.api_key else None
        client = (
            None
            if url.startswith(GRPC_SCHEMES)
            else UpstreamClient(
                "vllm",
                url,
                metrics=self.metrics,
                headers=headers,
                timeout_s=self.config.timeout_s,
                max_body_bytes=self.config.max_body_bytes,
                retry=RetryPolicy(attempts=1),  # a scrape is not retried: the next interval is the retry
                breaker=BreakerPolicy(failure_threshold=3, reset_after_s=self.config.interval_s),
                verify=self._tls,
                keepalive_s=self.config.interval_s * 2 + 5,  # one connection per target for its whole life
            )
        )
        state = self.targets[url] = TargetState(target=target, client=client, origins={origin})
        if self.running and self.owns(url):  # a new target is read at once, not at the next cycle
            self._spawn(self._scrape_and_publish(state))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def remove(self, url: str, origin: str | None = None) -> None:
        """Stop scraping a target (``origin``: only if no other origin still names it)."""
        url = url.rstrip("/")
        state = self.targets.get(url)
        if state is None:
            return
        if origin is not None:
            state.origins.discard(origin)
            if state.origins:
                return
        del self.targets[url]
        if state.client is not None:
            await state.client.aclose()

    async def reconcile(self, origin: str, targets: list[ScrapeTarget], *, also: tuple[str, ...] = ()) -> None:
        """Make ``origin``'s targets exactly ``targets`` (``also``: origins that a listing supersedes)."""
        wanted = {t.url.rstrip("/") for t in targets}
        for target in targets:
            self.add(target, origin)
            for other in also:
                self.targets[target.url.rstrip("/")].origins.discard(other)
        for url, state in list(self.targets.items()):
            if url not in wanted and origin in state.origins:
                await self.remove(url, origin)

    async def on_discovery(self, event: AnyEvent, _subject: str) -> None:
        """Targets found/lost by docker-watcher or any other discoverer."""
        if isinstance(event, TargetFound) and event.target.kind == "vllm":
            self.add(event.target, "found")
        elif isinstance(event, TargetLost) and event.target.kind == "vllm":
            state = self.targets.get(event.target.url.rstrip("/"))
            if state is not None:  # the discoverer says it is gone: static and DNS origins may keep it
                state.origins = {o for o in state.origins if o == "static" or o.startswith("dns:")}
                await self.remove(event.target.url, "found")
        elif isinstance(event, TargetSet):
            await self.reconcile("set:" + event.source, [t for t in event.targets if t.kind == "vllm"], also=("found",))

    async def refresh_dns(self) -> None:
        """Re-resolve every DNS name; a failed lookup keeps that name's previous targets."""
        found = await resolve_specs(self.config.dns, self.resolver, self.config.dns_server, self.config.timeout_s)
        for spec, urls in found.items():
            await self.reconcile("dns:" + spec, [ScrapeTarget(kind="vllm", url=u, labels={"dns": spec}) for u in urls])

    async def scrape(self, state: TargetState) -> VllmInstanceSnapshot:
        """Scrape one target: /metrics, /health, /v1/models, /version, concurrently (gRPC: the health service)."""
        if state.client is None:
            return await self.scrape_grpc(state)
        async with self._semaphore:
            started = time.perf_counter()
            client = state.client
            results: tuple[Any, ...] = await asyncio.gather(
                client.get("/metrics", endpoint="/metrics"),
                client.get("/health", endpoint="/health"),
                client.get("/v1/models", endpoint="/v1/models", cache_ttl_s=METADATA_TTL_S),
                client.get_json("/version", endpoint="/version", cache_ttl_s=METADATA_TTL_S),
                return_exceptions=True,
            )
            metrics_r, health_r, models_r, version_r = results
            duration = time.perf_counter() - started
        now = time.time()
        reading = read_instance(
            None if isinstance(metrics_r, BaseException) else metrics_r.body,
            None if isinstance(models_r, BaseException) else models_r.body,
            None if isinstance(version_r, BaseException) else version_r,
            max_engines=self.config.max_engines,
            max_models=self.config.max_models,
        )
        if reading.error == "parse_error":
            log.warning("malformed exposition", extra={"target": state.source, "error": reading.parse_detail[:200]})
        error = _reason(metrics_r) if isinstance(metrics_r, BaseException) else reading.error
        health_ok = not isinstance(health_r, BaseException) and health_r.status == 200
        reachable = not all(isinstance(r, BaseException) and _unreachable(r) for r in (metrics_r, health_r))
        status = model_status(
            reachable=reachable, health_ok=health_ok, has_models=bool(reading.models), previous=state.status
        )
        await self._track_loading(state, status, reading.models, now)
        if error:
            state.errors_total[error] = state.errors_total.get(error, 0.0) + 1
        t = state.target
        return VllmInstanceSnapshot(
            source=state.source,
            observed_at=now,
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            up=not error,
            error=error,
            status=status,
            health_ok=health_ok,
            version=reading.version or t.labels.get("vllm_version", ""),
            generation=reading.generation,
            models=reading.models,
            engines=reading.engines,
            scrape_duration_s=duration,
            load_duration_s=state.load_duration_s,
            container_id=t.container_id,
            container_name=t.container_name,
            gpus=[g for g in t.labels.get("gpus", "").split(",") if g],
            labels={k: v for k, v in t.labels.items() if k in ("host", "model")},
            errors_total=dict(state.errors_total),
            dropped_series=reading.dropped,
        )

    async def scrape_grpc(self, state: TargetState) -> VllmInstanceSnapshot:
        """A ``vllm serve --grpc`` instance: no HTTP, so only ``grpc.health.v1.Health/Check`` is read."""
        async with self._semaphore:
            started = time.perf_counter()
            serving, detail = await grpc_health(
                state.target.url, self.config.timeout_s, self.config.tls_ca_file, self.config.insecure
            )
            duration = time.perf_counter() - started
        now = time.time()
        reachable = not detail.startswith("grpc_")
        error = "" if reachable else detail
        status = model_status(reachable=reachable, health_ok=serving, has_models=serving, previous=state.status)
        await self._track_loading(state, status, [], now)
        if error:
            state.errors_total[error] = state.errors_total.get(error, 0.0) + 1
        t = state.target
        return VllmInstanceSnapshot(
            source=state.source,
            observed_at=now,
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            up=reachable,
            error=error,
            status=status,
            health_ok=serving,
            version=t.labels.get("vllm_version", ""),
            scrape_duration_s=duration,
            load_duration_s=state.load_duration_s,
            container_id=t.container_id,
            container_name=t.container_name,
            gpus=[g for g in t.labels.get("gpus", "").split(",") if g],
            labels={k: v for k, v in t.labels.items() if k in ("host", "model")},
            errors_total=dict(state.errors_total),
        )

    async def _track_loading(self, state: TargetState, status: str, models: list[VllmModelCard], now: float) -> None:
        if status == "loading" and state.loading_since is None:
            state.loading_since = now
        if status == "ready" and state.status == "loading" and state.loading_since is not None:
            state.load_duration_s = now - state.loading_since
            await self.ctx.bus.publish(
                VllmModelLoaded(
                    source=state.source,
                    observed_at=now,
                    collector=self.ctx.instance,
                    models=[m.id for m in models],
                    load_duration_s=state.load_duration_s,
                )
            )
        state.status = status

    async def _scrape_and_publish(self, state: TargetState, delay_s: float = 0.0) -> None:
        state.in_flight = True
        try:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if self.targets.get(state.target.url.rstrip("/")) is not state:
                return  # removed meanwhile
            try:
                snap = await self.scrape(state)
            except Exception:  # a bug, not an upstream failure: keep the others going
                log.exception("scrape failed unexpectedly", extra={"target": state.source})
                return
            await self.ctx.bus.publish(snap)
        finally:
            state.in_flight = False

    def owned(self) -> list[TargetState]:
        """The targets this replica scrapes now."""
        replicas = self.replicas()
        return [s for url, s in self.targets.items() if self.owns(url, replicas)]

    async def cycle(self) -> None:
        """Start one scrape of every owned target, spread over the interval; returns at once.

        Each target runs on its own timer (cycle start + a stable offset), so a slow target never
        delays the others or the next cycle; a target whose previous scrape is still running is skipped.
        """
        if self.config.dns:
            await self.refresh_dns()
        states = self.owned()
        self.ctx.targets = len(states)
        spread = self.config.interval_s * 0.8 if self.config.spread else 0.0
        for state in states:
            if not state.in_flight:
                state.in_flight = True
                self._spawn(self._scrape_and_publish(state, spread_offset(state.target.url, spread) if spread else 0.0))

    async def drain(self) -> None:
        """Wait for every scrape in flight (tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Close every client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for url in list(self.targets):
            await self.remove(url)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UpstreamError):
        return exc.outcome
    return type(exc).__name__


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.outcome in {"connect_error", "timeout", "circuit_open", "tls_error"}


async def run(ctx: ServiceContext, config: VllmScraperConfig) -> None:
    """Scrape every interval until stopped."""
    scraper = VllmScraper(config, ctx)
    await ctx.bus.subscribe(subject_filter("discovery"), scraper.on_discovery)
    if config.shard:  # learn the other replicas before taking a share, so nothing is scraped twice
        # only this service's replicas matter: other heartbeats are skipped before decoding
        await ctx.bus.subscribe(
            "inferwatch.v1.heartbeat.>", scraper.on_heartbeat, subject_prefix=heartbeat_subject_prefix(ctx.name)
        )
        if await ctx.sleep(min(ctx.heartbeat_interval_s * 1.2, config.interval_s)):
            return
    scraper.running = True
    try:
        while True:
            ctx.set_ready(
                True,
                f"scraping {len(scraper.targets)} vLLM targets"
                if scraper.targets
                else "idle: no vLLM targets configured or discovered yet",
            )
            started = time.monotonic()
            await scraper.cycle()
            if await ctx.sleep(max(0.0, config.interval_s - (time.monotonic() - started))):
                return
    finally:
        await scraper.aclose()


def build(ctx: ServiceContext, config: VllmScraperConfig) -> ServiceApp:
    """The vllm-scraper as `run_service` runs it."""
    return ServiceApp(run=lambda: run(ctx, config))

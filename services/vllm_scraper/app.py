"""vllm-scraper's I/O edges: scrape each target's endpoints, publish one snapshot per target per interval."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.discovery import ScrapeTarget
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.subjects import HEARTBEAT_V1_FILTER, heartbeat_filter, subject_filter
from inferwatch.contracts.vllm import ModelStatus, VllmInstanceSnapshot, VllmModelCard, VllmModelLoaded
from inferwatch.services.vllm_scraper.config import GRPC_SCHEMES, VllmScraperConfig
from inferwatch.services.vllm_scraper.core import model_status, read_instance, rendezvous_owner, spread_offset
from inferwatch.shared.extras import MissingExtraError, require
from inferwatch.shared.http import (
    UNREACHABLE,
    BreakerPolicy,
    CallPolicy,
    Limits,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
    strip_credentials,
)
from inferwatch.shared.loop import run_every
from inferwatch.shared.service import ServiceContext
from inferwatch.shared.targets import STATIC, DnsTargets, ScrapeTargets
from inferwatch.shared.tls import TlsPolicy

T = TypeVar("T")
U = TypeVar("U")

log = logging.getLogger("inferwatch.vllm_scraper")

METADATA_TTL_S = 60.0


@dataclass
class TargetState:
    """What the scraper remembers about one target between scrapes."""

    target: ScrapeTarget
    client: UpstreamClient | None  # None for gRPC targets (``grpc://``, ``grpcs://``)
    status: ModelStatus = "loading"
    loading_since: float | None = None
    load_duration_s: float | None = None
    errors_total: dict[str, float] = field(default_factory=dict)
    origins: set[str] = field(default_factory=set)
    in_flight: bool = False

    source: str = ""  # the URL as events and labels may show it (no userinfo, query, fragment); set once

    def __post_init__(self) -> None:
        self.source = strip_credentials(self.target.url)


_logged: set[str] = set()


def log_once(text: str) -> None:
    """Log ``text`` as an error the first time only (a missing extra is the same news every interval)."""
    if text not in _logged:
        _logged.add(text)
        log.error(text)


async def grpc_health(url: str, timeout_s: float, tls: TlsPolicy) -> tuple[bool, str]:
    """``grpc.health.v1.Health/Check`` (service ``""``): (serving, status name or ``grpc_<code>`` on failure).

    ``grpcs://`` uses TLS with verification (the CAs of ``tls``); ``grpc://`` (or ``tls.insecure``) is plaintext.
    """
    try:
        grpc: Any = require("grpc")
        health_pb2: Any = require("grpc_health.v1.health_pb2")
        health_pb2_grpc: Any = require("grpc_health.v1.health_pb2_grpc")
    except MissingExtraError as exc:
        log_once(str(exc))
        return False, "grpc_extra_missing"

    secure = url.startswith("grpcs://")
    address = url.split("://", 1)[1].rstrip("/")
    if secure and not tls.insecure:
        root = tls.root_certificates()  # read once per policy
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
        self.metrics = UpstreamMetrics.of(ctx.registry)
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self.peers: dict[str, float] = {}  # other live replicas: instance -> monotonic expiry
        self.running = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._tls = TlsPolicy.from_ca_path(config.tls_ca_file, insecure=config.insecure)
        self._policy = CallPolicy(
            # one connection per target for its whole life
            limits=Limits(
                timeout_s=config.timeout_s, max_body_bytes=config.max_body_bytes, keepalive_s=config.interval_s * 2 + 5
            ),
            retry=RetryPolicy(attempts=1),  # a scrape is not retried: the next interval is the retry
            breaker=BreakerPolicy(failure_threshold=3, reset_after_s=config.interval_s),
        )
        self._tls.context()  # a CA setting that cannot be loaded stops the service at start, not at a scrape
        self.targets: ScrapeTargets[TargetState] = ScrapeTargets(
            "vllm",
            ctx,
            create=self._open,
            dispose=_close,
            dns=DnsTargets(
                specs=config.dns, nameserver=config.dns_server, timeout_s=config.timeout_s, interval_s=config.interval_s
            ),
            on_added=self._on_added,
        )
        for url in config.targets:
            self.targets.add(ScrapeTarget(kind="vllm", url=url), STATIC)

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

    def _open(self, target: ScrapeTarget) -> TargetState:
        url = target.url.rstrip("/")
        headers = {"Authorization": f"Bearer {self.config.api_key.reveal()}"} if self.config.api_key else None
        client = (
            None
            if url.startswith(GRPC_SCHEMES)
            else UpstreamClient("vllm", url, metrics=self.metrics, headers=headers, policy=self._policy, tls=self._tls)
        )
        return TargetState(target=target, client=client)

    def _on_added(self, state: TargetState) -> None:
        if self.running and self.owns(state.target.url.rstrip("/")):  # a new target is read at once
            self._spawn(self._scrape_and_publish(state))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def scrape(self, state: TargetState) -> VllmInstanceSnapshot:
        """Scrape one target: /metrics, /health, /v1/models, /version, concurrently (gRPC: the health service)."""
        if state.client is None:
            return await self.scrape_grpc(state)
        async with self._semaphore:
            started = time.perf_counter()
            client = state.client
            models_c = client.get("/v1/models", endpoint="/v1/models", cache_ttl_s=METADATA_TTL_S)
            version_c = client.get_json("/version", endpoint="/version", cache_ttl_s=METADATA_TTL_S)
            if client.cached("/v1/models") and client.cached("/version"):
                # 3 cycles in 4 both come from the 60 s cache: awaited first and inline they finish without
                # I/O and need no task of their own; only the two requests that go out run concurrently.
                models_r, version_r = await _settled(models_c), await _settled(version_c)
                metrics_r, health_r = await _concurrently(
                    client.get("/metrics", endpoint="/metrics"), client.get("/health", endpoint="/health")
                )
            else:
                results: tuple[Any, ...] = await asyncio.gather(
                    client.get("/metrics", endpoint="/metrics"),
                    client.get("/health", endpoint="/health"),
                    models_c,
                    version_c,
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
            version=reading.version or t.version,
            generation=reading.generation,
            models=reading.models,
            engines=reading.engines,
            scrape_duration_s=duration,
            load_duration_s=state.load_duration_s,
            container_id=t.container_id,
            container_name=t.container_name,
            gpus=list(t.gpus),
            labels={k: v for k, v in t.labels.items() if k in ("host", "model")},
            errors_total=dict(state.errors_total),
            dropped_series=reading.dropped,
            lora=reading.lora,
            http=reading.http,
        )

    async def scrape_grpc(self, state: TargetState) -> VllmInstanceSnapshot:
        """A ``vllm serve --grpc`` instance: no HTTP, so only ``grpc.health.v1.Health/Check`` is read."""
        async with self._semaphore:
            started = time.perf_counter()
            serving, detail = await grpc_health(state.target.url, self.config.timeout_s, self._tls)
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
            version=t.version,
            scrape_duration_s=duration,
            load_duration_s=state.load_duration_s,
            container_id=t.container_id,
            container_name=t.container_name,
            gpus=list(t.gpus),
            labels={k: v for k, v in t.labels.items() if k in ("host", "model")},
            errors_total=dict(state.errors_total),
        )

    async def _track_loading(
        self, state: TargetState, status: ModelStatus, models: list[VllmModelCard], now: float
    ) -> None:
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
        await self.targets.refresh_dns_if_due()
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
        await self.targets.aclose()


async def _close(state: TargetState) -> None:
    if state.client is not None:
        await state.client.aclose()


async def _settled(call: Awaitable[T]) -> T | Exception:
    """The call's result, or the exception it raised (as ``gather(..., return_exceptions=True)`` gives it)."""
    try:
        return await call
    except Exception as exc:
        return exc


async def _concurrently(first: Awaitable[T], second: Awaitable[U]) -> tuple[T | Exception, U | Exception]:
    """Both calls at once, settled: ``second`` as a task, ``first`` awaited in the caller's task.

    ``gather`` would wrap each in a task; the scraper does this for every target every cycle.
    """
    other = asyncio.ensure_future(_settled(second))
    try:
        first_r = await _settled(first)
    except BaseException:  # cancelled: so is the request in flight beside it
        other.cancel()
        raise
    return first_r, await other


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UpstreamError):
        return exc.outcome.value
    return type(exc).__name__


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.outcome in UNREACHABLE


async def run(ctx: ServiceContext, config: VllmScraperConfig) -> None:
    """Scrape every interval until stopped."""
    scraper = VllmScraper(config, ctx)
    await ctx.bus.subscribe(subject_filter("discovery"), scraper.targets.on_discovery)
    if config.shard:  # learn the other replicas before taking a share, so nothing is scraped twice
        await ctx.bus.subscribe(heartbeat_filter(ctx.name), scraper.on_heartbeat)
        # replicas of the previous release still announce themselves on v1 subjects (one release only)
        await ctx.bus.subscribe(HEARTBEAT_V1_FILTER, scraper.on_heartbeat)
        if await ctx.sleep(min(ctx.heartbeat_interval_s * 1.2, config.interval_s)):
            return
    scraper.running = True

    async def cycle() -> None:
        ctx.set_ready(
            True,
            f"scraping {len(scraper.targets)} vLLM targets"
            if scraper.targets
            else "idle: no vLLM targets configured or discovered yet",
        )
        await scraper.cycle()

    try:
        await run_every(config.interval_s, cycle, ctx.sleep)
    finally:
        await scraper.aclose()

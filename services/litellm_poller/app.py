"""litellm-poller's I/O edges: poll each LiteLLM proxy, publish one `LitellmProxySnapshot` per proxy per interval."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from inferwatch.contracts.litellm import LitellmProxySnapshot, MetricsMode, ModelRoute, RouteStatus
from inferwatch.services.litellm_poller.config import LitellmPollerConfig, ProxyConfig
from inferwatch.services.litellm_poller.core import (
    WANTED,
    Readiness,
    apply_deployment_state,
    deployment_metrics,
    error_hint,
    error_label,
    in_flight,
    merge_group_info,
    metrics_mode,
    parse_backlog,
    parse_health,
    parse_model_group_info,
    parse_model_info,
    parse_readiness,
    usage_by_group,
)
from inferwatch.shared.exposition import ExpositionError, MetricFamily, parse_exposition
from inferwatch.shared.http import (
    BreakerPolicy,
    CallPolicy,
    Limits,
    Outcome,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
)
from inferwatch.shared.loop import run_every
from inferwatch.shared.service import ServiceContext
from inferwatch.shared.tls import TlsPolicy

log = logging.getLogger("inferwatch.litellm_poller")


@dataclass
class ProxyState:
    """What the poller remembers about one proxy between polls."""

    proxy: ProxyConfig
    client: UpstreamClient
    routes: list[ModelRoute] = field(default_factory=list)
    routes_expire_at: float = 0.0  # monotonic; the last good model list is kept until then
    readiness_details: Readiness | None = None
    health: dict[str, RouteStatus] = field(default_factory=dict)
    health_next_at: float = 0.0
    backoff_until: float = 0.0  # monotonic; set by 429 Retry-After
    errors_total: dict[str, float] = field(default_factory=dict)
    metrics_mode: MetricsMode = ""


class LitellmPoller:
    """Polls every configured proxy."""

    def __init__(self, config: LitellmPollerConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.metrics = UpstreamMetrics.of(ctx.registry)
        self.proxies: dict[str, ProxyState] = {}
        for proxy in config.proxies:
            client = UpstreamClient(
                "litellm",
                proxy.url,
                metrics=self.metrics,
                headers=proxy.auth_headers(),
                policy=CallPolicy(
                    limits=Limits(timeout_s=config.timeout_s, max_body_bytes=config.max_body_bytes),
                    retry=RetryPolicy(attempts=1),  # the next interval is the retry
                    breaker=BreakerPolicy(failure_threshold=5, reset_after_s=config.interval_s),
                ),
                tls=TlsPolicy.from_ca_path(proxy.tls_ca_file, insecure=proxy.insecure),
            )
            self.proxies[proxy.name] = ProxyState(proxy=proxy, client=client)

    def _failed(self, state: ProxyState, endpoint: str, exc: BaseException) -> str:
        """Count and log one failed call; returns its label."""
        if isinstance(exc, UpstreamError):
            label = error_label(exc.outcome, exc.status)
            if exc.status == 429 or exc.outcome is Outcome.HTTP_429:
                wait = exc.retry_after_s if exc.retry_after_s is not None else self.config.interval_s
                state.backoff_until = max(state.backoff_until, time.monotonic() + min(wait, 3600.0))
            hint = (
                error_hint(exc.status)
                if exc.status is not None or exc.outcome is not Outcome.CIRCUIT_OPEN
                else "circuit open"
            )
        else:
            label, hint = type(exc).__name__, "unexpected error"
        key = f"{endpoint}:{label}"
        state.errors_total[key] = state.errors_total.get(key, 0.0) + 1
        log.warning(
            "LiteLLM call failed: proxy=%s endpoint=%s error=%s (%s)",
            state.proxy.name,
            endpoint,
            label,
            hint,
            extra={"proxy": state.proxy.name, "endpoint": endpoint, "error": label},
        )
        return label

    async def _json(self, state: ProxyState, path: str, *, ttl: float | None = None) -> Any:
        """GET JSON; on failure count it and return the exception."""
        try:
            return await state.client.get_json(path, endpoint=path, cache_ttl_s=ttl)
        except Exception as exc:  # counted and labelled; the loop carries on
            self._failed(state, path, exc)
            return exc

    async def _metrics(self, state: ProxyState) -> tuple[MetricsMode, dict[str, MetricFamily] | None]:
        """``/metrics/`` (trailing slash: the bare path answers 307) → (metrics mode, families)."""
        try:
            response = await state.client.get("/metrics/", endpoint="/metrics/")
        except UpstreamError as exc:
            self._failed(state, "/metrics/", exc)
            if exc.status == 404:
                return "absent", None
            if exc.status in (400, 401, 403):
                return "unauthorized", None
            return "error", None
        try:
            families = parse_exposition(response.body, families=WANTED)
        except ExpositionError as exc:
            state.errors_total["/metrics/:parse_error"] = state.errors_total.get("/metrics/:parse_error", 0.0) + 1
            log.warning(
                "malformed LiteLLM exposition: proxy=%s",
                state.proxy.name,
                extra={"proxy": state.proxy.name, "error": str(exc)[:200]},
            )
            return "error", None
        return metrics_mode(families), families

    async def _model_info(self, state: ProxyState) -> None:
        """Refresh the cached model list (``/model/info`` + ``/model_group/info``) when its TTL has run out."""
        now = time.monotonic()
        if now < state.routes_expire_at:
            return
        ttl = self.config.model_info_ttl_s
        info, groups, details = await asyncio.gather(
            self._json(state, "/model/info", ttl=ttl),
            self._json(state, "/model_group/info", ttl=ttl),
            self._json(state, "/health/readiness/details", ttl=ttl),
        )
        if not isinstance(details, BaseException):
            try:
                state.readiness_details = parse_readiness(details)
            except ValueError as exc:
                self._invalid(state, "/health/readiness/details", exc)
        if isinstance(info, BaseException):
            return  # the last good list stays until it expires
        try:
            routes = parse_model_info(info)
        except ValueError as exc:
            self._invalid(state, "/model/info", exc)
            return
        if not isinstance(groups, BaseException):
            try:
                routes = merge_group_info(routes, parse_model_group_info(groups))
            except ValueError as exc:
                self._invalid(state, "/model_group/info", exc)
        state.routes = routes
        state.routes_expire_at = now + ttl

    def _invalid(self, state: ProxyState, endpoint: str, exc: ValueError) -> None:
        key = f"{endpoint}:invalid_body"
        state.errors_total[key] = state.errors_total.get(key, 0.0) + 1
        log.warning(
            "unexpected LiteLLM answer: proxy=%s endpoint=%s: %s",
            state.proxy.name,
            endpoint,
            str(exc)[:200],
            extra={"proxy": state.proxy.name, "endpoint": endpoint},
        )

    async def _health(self, state: ProxyState) -> None:
        """``/health`` (opt-in: it calls every upstream model unless background health checks are on)."""
        if self.config.health_interval_s <= 0 or time.monotonic() < state.health_next_at:
            return
        state.health_next_at = time.monotonic() + self.config.health_interval_s
        raw = await self._json(state, "/health")
        if not isinstance(raw, BaseException):
            try:
                state.health = parse_health(raw)
            except ValueError as exc:
                self._invalid(state, "/health", exc)

    async def poll(self, state: ProxyState) -> LitellmProxySnapshot:
        """One poll of one proxy."""
        started = time.perf_counter()
        name = state.proxy.name
        if time.monotonic() < state.backoff_until:  # 429 Retry-After: only the unauthenticated liveness probe
            alive = await self._json(state, "/health/liveliness")
            up = not isinstance(alive, BaseException)
            return self._snapshot(state, up=up, error="rate_limited", started=started)
        alive, ready_raw, backlog_raw, (mode, families) = await asyncio.gather(
            self._json(state, "/health/liveliness"),
            self._json(state, "/health/readiness"),
            self._json(state, "/health/backlog"),
            self._metrics(state),
        )
        up = not isinstance(alive, BaseException)
        error = ""
        if not up:
            assert isinstance(alive, BaseException)
            error = error_label(alive.outcome, alive.status) if isinstance(alive, UpstreamError) else "error"
        ready = Readiness(ready=False)
        if not isinstance(ready_raw, BaseException):
            try:
                ready = parse_readiness(ready_raw)
            except ValueError as exc:
                self._invalid(state, "/health/readiness", exc)
        if up:
            await asyncio.gather(self._model_info(state), self._health(state))
        if time.monotonic() >= state.routes_expire_at and state.routes and not up:
            state.routes = []  # expired and the proxy is gone
        state.metrics_mode = mode
        usage = usage_by_group(families) if families else []
        dm = deployment_metrics(families, {r.deployment_id: r.model_group for r in state.routes}) if families else {}
        routes = apply_deployment_state(state.routes, dm, state.health)
        backlog = parse_backlog(backlog_raw) if isinstance(backlog_raw, dict) else {}
        flight = backlog.get("in_flight_requests")
        if flight is None and families:
            flight = in_flight(families)
        details = state.readiness_details
        if up and not error and mode in ("unauthorized", "error"):
            error = f"metrics_{mode}"
        log.debug("polled LiteLLM proxy %s", name)
        return msgspec.structs.replace(
            self._snapshot(state, up=up, error=error, started=started),
            ready=ready.ready,
            db_status=ready.db_status or (details.db_status if details else ""),
            version=ready.version or (details.version if details else ""),
            callbacks=list(details.callbacks) if details else [],
            routes=routes,
            usage=usage,
            in_flight_requests=flight,
            queued_requests=backlog.get("queued_requests"),
            rejected_requests=backlog.get("rejected_requests"),
        )

    def _snapshot(self, state: ProxyState, *, up: bool, error: str, started: float) -> LitellmProxySnapshot:
        """The snapshot of what ``state`` holds; a full poll replaces the fields it observed."""
        return LitellmProxySnapshot(
            source=state.proxy.name,
            observed_at=time.time(),
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            up=up,
            error=error,
            metrics_mode=state.metrics_mode,
            routes=state.routes,
            errors_total=dict(state.errors_total),
            poll_duration_s=time.perf_counter() - started,
            base_url=state.client.base,
        )

    async def _poll_and_publish(self, state: ProxyState) -> None:
        try:
            snap = await self.poll(state)
        except Exception:  # a bug, not an upstream failure: keep the other proxies going
            log.exception("poll failed unexpectedly", extra={"proxy": state.proxy.name})
            return
        await self.ctx.bus.publish(snap)

    async def cycle(self) -> None:
        """Poll every proxy once, concurrently, and publish the snapshots."""
        self.ctx.targets = len(self.proxies)
        await asyncio.gather(*(self._poll_and_publish(s) for s in self.proxies.values()))

    async def aclose(self) -> None:
        """Close every client."""
        for state in self.proxies.values():
            await state.client.aclose()


async def run(ctx: ServiceContext, config: LitellmPollerConfig) -> None:
    """Poll every interval until stopped; with no proxy configured, idle (ready, saying so)."""
    poller = LitellmPoller(config, ctx)
    ctx.set_ready(  # the proxies are fixed at start: so is this
        True,
        f"polling {len(poller.proxies)} LiteLLM proxies"
        if poller.proxies
        else "idle: no LiteLLM proxy configured (INFERWATCH_LITELLM_URL or INFERWATCH_CONFIG)",
    )
    try:
        await run_every(config.interval_s, poller.cycle, ctx.sleep)
    finally:
        await poller.aclose()

"""vllm-scraper's I/O edges: scrape each target's endpoints, publish one snapshot per target per interval."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from contracts import AnyEvent
from contracts.discovery import ScrapeTarget, TargetFound, TargetLost, TargetSet
from contracts.vllm import VllmInstanceSnapshot, VllmModelCard, VllmModelLoaded
from services.vllm_scraper.config import VllmScraperConfig
from services.vllm_scraper.core import WANTED, detect_generation, engine_stats, model_status, parse_models
from shared.exposition import ExpositionError, parse_exposition
from shared.http import BreakerPolicy, RetryPolicy, UpstreamClient, UpstreamError, UpstreamMetrics
from shared.service import ServiceContext

log = logging.getLogger("inferwatch.vllm_scraper")

METADATA_TTL_S = 60.0


@dataclass
class TargetState:
    """What the scraper remembers about one target between scrapes."""

    target: ScrapeTarget
    client: UpstreamClient
    status: str = "loading"
    loading_since: float | None = None
    load_duration_s: float | None = None
    errors_total: dict[str, float] = field(default_factory=dict)


class VllmScraper:
    """Owns the target set and scrapes it."""

    def __init__(self, config: VllmScraperConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.metrics = UpstreamMetrics(ctx.registry)
        self.targets: dict[str, TargetState] = {}
        self._semaphore = asyncio.Semaphore(config.concurrency)
        for url in config.targets:
            self.add(ScrapeTarget(kind="vllm", url=url))

    def add(self, target: ScrapeTarget) -> None:
        """Start scraping a target (or refresh its container metadata)."""
        url = target.url.rstrip("/")
        state = self.targets.get(url)
        if state is not None:
            state.target = target
            return
        headers = {"Authorization": f"Bearer {self.config.api_key.reveal()}"} if self.config.api_key else None
        client = UpstreamClient(
            "vllm",
            url,
            metrics=self.metrics,
            headers=headers,
            timeout_s=self.config.timeout_s,
            max_body_bytes=self.config.max_body_bytes,
            retry=RetryPolicy(attempts=1),  # a scrape is not retried: the next interval is the retry
            breaker=BreakerPolicy(failure_threshold=3, reset_after_s=self.config.interval_s),
            verify=False if self.config.insecure else (self.config.tls_ca_file or True),
        )
        self.targets[url] = TargetState(target=target, client=client)
        self.ctx.targets = len(self.targets)

    async def remove(self, url: str) -> None:
        """Stop scraping a target; its series expire on the aggregator."""
        state = self.targets.pop(url.rstrip("/"), None)
        self.ctx.targets = len(self.targets)
        if state is not None:
            await state.client.aclose()

    async def on_discovery(self, event: AnyEvent, _subject: str) -> None:
        """Targets found/lost by docker-watcher or any other discoverer."""
        if isinstance(event, TargetFound) and event.target.kind == "vllm":
            self.add(event.target)
        elif isinstance(event, TargetLost) and event.target.kind == "vllm":
            await self.remove(event.target.url)
        elif isinstance(event, TargetSet):
            for target in event.targets:
                if target.kind == "vllm":
                    self.add(target)

    async def scrape(self, state: TargetState) -> VllmInstanceSnapshot:
        """Scrape one target: /metrics, /health, /v1/models, /version, concurrently."""
        async with self._semaphore:
            started = time.perf_counter()
            client = state.client
            metrics_r, health_r, models_r, version_r = await asyncio.gather(
                client.get("/metrics", endpoint="/metrics"),
                client.get("/health", endpoint="/health"),
                client.get("/v1/models", endpoint="/v1/models", cache_ttl_s=METADATA_TTL_S),
                client.get_json("/version", endpoint="/version", cache_ttl_s=METADATA_TTL_S),
                return_exceptions=True,
            )
            duration = time.perf_counter() - started
        now = time.time()
        error = ""
        engines = []
        generation = ""
        if isinstance(metrics_r, BaseException):
            error = _reason(metrics_r)
        else:
            try:
                families = parse_exposition(metrics_r.body, families=WANTED)
                generation = detect_generation(families)
                engines = engine_stats(families)
            except ExpositionError as exc:
                error = "parse_error"
                log.warning("malformed exposition", extra={"target": state.target.url, "error": str(exc)[:200]})
        models: list[VllmModelCard] = []
        if not isinstance(models_r, BaseException):
            try:
                models = parse_models(models_r.body)
            except ValueError:
                error = error or "invalid_models"
        health_ok = not isinstance(health_r, BaseException) and health_r.status == 200
        version = ""
        if not isinstance(version_r, BaseException) and isinstance(version_r, dict):
            version = str(version_r.get("version", ""))
        reachable = not all(isinstance(r, BaseException) and _unreachable(r)
                            for r in (metrics_r, health_r))
        status = model_status(reachable=reachable, health_ok=health_ok, has_models=bool(models),
                              previous=state.status)
        await self._track_loading(state, status, models, now)
        if error:
            state.errors_total[error] = state.errors_total.get(error, 0.0) + 1
        t = state.target
        return VllmInstanceSnapshot(
            source=t.url,
            observed_at=now,
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            up=not error,
            error=error,
            status=status,
            health_ok=health_ok,
            version=version or t.labels.get("vllm_version", ""),
            generation=generation,
            models=models,
            engines=engines,
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
            await self.ctx.bus.publish(VllmModelLoaded(
                source=state.target.url, observed_at=now, collector=self.ctx.instance,
                models=[m.id for m in models], load_duration_s=state.load_duration_s))
        state.status = status

    async def cycle(self) -> None:
        """Scrape every target once and publish the snapshots."""
        states = list(self.targets.values())
        snapshots = await asyncio.gather(*(self.scrape(s) for s in states), return_exceptions=True)
        for state, snap in zip(states, snapshots, strict=True):
            if isinstance(snap, BaseException):  # a bug, not an upstream failure: keep the others going
                log.error("scrape failed unexpectedly", extra={"target": state.target.url},
                          exc_info=snap)
                continue
            await self.ctx.bus.publish(snap)

    async def aclose(self) -> None:
        """Close every client."""
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
    await ctx.bus.subscribe("inferwatch.v1.discovery.>", scraper.on_discovery)
    try:
        while True:
            ctx.set_ready(True, f"scraping {len(scraper.targets)} vLLM targets" if scraper.targets
                          else "idle: no vLLM targets configured or discovered yet")
            started = time.monotonic()
            await scraper.cycle()
            if await ctx.sleep(max(0.0, config.interval_s - (time.monotonic() - started))):
                return
    finally:
        await scraper.aclose()

"""model-catalog's I/O edges: read model sightings off the bus, enrich from the Hugging Face API, publish the catalog.

Inputs (NATS): ``vllm.instance`` (``/v1/models`` cards), ``litellm.proxy`` (model groups), ``docker.host``
(served model names and ``--model`` paths of containers) and ``docker.lifecycle`` (a container stopped).
Output: one ``catalog.models`` snapshot (``contracts.catalog.ModelCatalogSnapshot``) every interval and at once
when the catalog changes.

Hugging Face: ``GET {HF_ENDPOINT}/api/models/{repo_id}`` once per new repo id; answers, 401/403 (gated,
private) and 404 (not a Hub model) are cached for 24 h in memory and in a JetStream key-value bucket shared by
replicas (memory only when JetStream is unavailable); 429 pauses every lookup for ``Retry-After``; timeouts
and 5xx back off per repo. ``HF_HUB_OFFLINE=1`` makes no request at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.catalog import CatalogEntry, ModelCatalogSnapshot
from inferwatch.contracts.docker import ContainerLifecycle, DockerHostSnapshot
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.subjects import subject_filter
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.services.model_catalog.config import ModelCatalogConfig
from inferwatch.services.model_catalog.core import (
    STOPPED_ACTIONS,
    HfRecord,
    SourceSightings,
    current_sightings,
    enrich,
    is_repo_id,
    kv_key,
    merge,
    parse_hf_model,
    publish_key,
    record_for_status,
    replace_source,
    retry_delay_s,
    sightings_from_docker,
    sightings_from_litellm,
    sightings_from_vllm,
    unavailable,
)
from inferwatch.shared.bus import Bus
from inferwatch.shared.http import (
    BreakerPolicy,
    CallPolicy,
    CircuitOpen,
    Limits,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
)
from inferwatch.shared.kv import open_bucket
from inferwatch.shared.log import RateLimitedLog
from inferwatch.shared.loop import Ticker
from inferwatch.shared.service import ServiceContext

log = logging.getLogger("inferwatch.model_catalog")

SUBJECTS = (
    subject_filter("vllm", "instance"),
    subject_filter("litellm", "proxy"),
    subject_filter("docker", "host"),
    subject_filter("docker", "lifecycle"),
)
KV_RETRY_S = 300.0  # how often to try JetStream again after it was unavailable (offline: re-read a miss)
DEBOUNCE_S = 0.2  # a burst of snapshots (every vLLM scraped at once) becomes one publication


class HfCache:
    """HF lookups by repo id: in memory, backed by a JetStream key-value bucket when there is one."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.memory: dict[str, HfRecord] = {}
        self.kv: Any = None
        self.kv_errors = 0
        self._rate_log = RateLimitedLog()

    async def open_kv(self, bus: Bus, bucket: str) -> bool:
        """Open (or create, with the TTL, replicated on a cluster) the shared bucket; False without JetStream."""
        try:
            self.kv = await asyncio.wait_for(open_bucket(bus, bucket, ttl_s=self.ttl_s), 5)
        except Exception as exc:  # JetStream off, no permission, timeout: nats-py raises several types
            self.kv = None
            log.warning(
                "JetStream key-value unavailable; caching HF lookups in memory only",
                extra={"bucket": bucket, "error": type(exc).__name__},
            )
            return False
        log.info("HF lookups cached in JetStream key-value", extra={"bucket": bucket})
        return True

    def cached(self, repo_id: str) -> HfRecord | None:
        """The in-memory record, unless expired."""
        record = self.memory.get(repo_id)
        if record is not None and self.clock() - record.fetched_at >= self.ttl_s:
            del self.memory[repo_id]
            return None
        return record

    async def shared(self, repo_id: str) -> HfRecord | None:
        """The record another replica (or an earlier run) stored, copied into memory; None when absent."""
        if self.kv is None:
            return None
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.kv.get(kv_key(repo_id))
        except KeyNotFoundError:
            return None
        except Exception as exc:  # the bucket went away: carry on from memory
            self._kv_failed("get", exc)
            return None
        record = HfRecord.from_json(entry.value) if entry.value else None
        if record is None or self.clock() - record.fetched_at >= self.ttl_s:
            return None
        self.memory[repo_id] = record
        return record

    async def put(self, repo_id: str, record: HfRecord) -> None:
        """Keep a record in memory and in the shared bucket."""
        self.memory[repo_id] = record
        if self.kv is None:
            return
        try:
            await self.kv.put(kv_key(repo_id), record.to_json())
        except Exception as exc:
            self._kv_failed("put", exc)

    def _kv_failed(self, op: str, exc: Exception) -> None:
        self.kv_errors += 1
        allowed, suppressed = self._rate_log.allow(f"kv:{op}")
        if allowed:
            log.warning("key-value %s failed", op, extra={"error": type(exc).__name__, "suppressed": suppressed})


class HfEnricher:
    """Looks new repo ids up on the Hub in the background, at most ``hf_concurrency`` at once."""

    def __init__(
        self, config: ModelCatalogConfig, registry: CollectorRegistry, cache: HfCache, on_update: Callable[[], None]
    ) -> None:
        self.config = config
        self.cache = cache
        self.on_update = on_update
        self.client: UpstreamClient | None = None
        if not config.hf_offline:
            token = config.hf_token
            headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else None
            self.client = UpstreamClient(
                "huggingface",
                config.hf_endpoint,
                metrics=UpstreamMetrics.of(registry),
                headers=headers,
                policy=CallPolicy(
                    limits=Limits(timeout_s=config.hf_timeout_s, max_body_bytes=4 * 1024 * 1024, keepalive_s=60.0),
                    # 429 is ours to handle (pause every lookup); one quick retry of a 5xx or a dropped connection
                    retry=RetryPolicy(attempts=2, retry_on_status=frozenset({500, 502, 503, 504})),
                    breaker=BreakerPolicy(failure_threshold=5, reset_after_s=60.0),
                ),
            )
        self.lookups = Counter(
            "inferwatch_catalog_hf_lookups", "Hugging Face lookups by result.", ["result"], registry=registry
        )
        self.in_flight: set[str] = set()
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.paused_until = 0.0  # monotonic; set by 429 and an open circuit
        self._semaphore = asyncio.Semaphore(config.hf_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.TimerHandle | None = None
        self._rate_log = RateLimitedLog()

    @property
    def offline(self) -> bool:
        """No requests to the Hub at all (``HF_HUB_OFFLINE``)."""
        return self.client is None

    def record(self, repo_id: str) -> HfRecord | None:
        """What is known about a repo now (memory only: merging is synchronous)."""
        return self.cache.cached(repo_id)

    def want(self, repo_ids: Iterable[str]) -> None:
        """Start lookups for repo ids not known, not in flight and not backing off."""
        now = time.monotonic()
        if now < self.paused_until:
            return  # rate limited: the wake-up at the end of the pause brings us back here
        for repo_id in repo_ids:
            if repo_id in self.in_flight or self.cache.cached(repo_id) is not None:
                continue
            if self.retry_at.get(repo_id, 0.0) > now:
                continue
            self.in_flight.add(repo_id)
            task = asyncio.create_task(self._lookup(repo_id), name=f"hf-lookup-{repo_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _lookup(self, repo_id: str) -> None:
        try:
            if await self.cache.shared(repo_id) is not None:
                self.lookups.labels("cache_kv").inc()
                self.on_update()
                return
            if self.client is None:  # offline: only the shared cache is read, again now and then
                self.retry_at[repo_id] = time.monotonic() + KV_RETRY_S
                return
            async with self._semaphore:
                if time.monotonic() < self.paused_until:
                    self._wake_at(self.paused_until)
                    return
                record = await self._fetch(self.client, repo_id)
            if record is not None:
                await self.cache.put(repo_id, record)
                self.on_update()
        except Exception:  # a bug here must not end the service; the repo is tried again later
            log.exception("HF lookup crashed", extra={"repo_id": repo_id})
            self._back_off(repo_id)
        finally:
            self.in_flight.discard(repo_id)

    async def _fetch(self, client: UpstreamClient, repo_id: str) -> HfRecord | None:
        """One request; the record to cache, or None when it must be retried later."""
        now = time.time()
        try:
            body = await client.get_json(f"/api/models/{repo_id}", endpoint="/api/models/{repo_id}")
        except CircuitOpen as exc:
            self.lookups.labels(exc.outcome.value).inc()
            self._pause(exc.retry_after_s or 60.0)
            return None
        except UpstreamError as exc:
            record = record_for_status(exc.status, now) if exc.status is not None else None
            if record is not None:
                self.lookups.labels(record.status).inc()
                if exc.status == 401 and self.config.hf_token is not None:
                    allowed, suppressed = self._rate_log.allow("token_401")
                    if allowed:  # the Hub answers 401 to every request made with a bad token
                        log.warning(
                            "HF answered 401 with HF_TOKEN set: is the token valid?", extra={"suppressed": suppressed}
                        )
                log.info(
                    "HF model not readable",
                    extra={"repo_id": repo_id, "status": exc.status, "cached_as": record.status},
                )
                return record
            if exc.status == 429:
                self.lookups.labels("rate_limited").inc()
                wait = exc.retry_after_s if exc.retry_after_s is not None else self.config.hf_default_retry_after_s
                log.warning("HF rate limit: pausing lookups", extra={"retry_after_s": round(wait, 3)})
                self._pause(wait)
                return None
            self.lookups.labels("error").inc()
            self._back_off(repo_id)
            return None
        if not isinstance(body, dict):
            self.lookups.labels("error").inc()
            self._back_off(repo_id)
            return None
        self.failures.pop(repo_id, None)
        self.retry_at.pop(repo_id, None)
        self.lookups.labels("ok").inc()
        return HfRecord("ok", now, parse_hf_model(body))

    def _pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + max(0.0, seconds))
        self._wake_at(self.paused_until)

    def _wake_at(self, monotonic_at: float) -> None:
        """Ask for a catalog rebuild (and so new lookups) when a pause ends."""
        if self._wake is not None and not self._wake.cancelled():
            self._wake.cancel()
        loop = asyncio.get_running_loop()
        self._wake = loop.call_later(max(0.0, monotonic_at - time.monotonic()) + 0.01, self.on_update)

    def _back_off(self, repo_id: str) -> None:
        failures = self.failures.get(repo_id, 0) + 1
        self.failures[repo_id] = failures
        delay = retry_delay_s(failures, self.config.hf_retry_base_s)
        self.retry_at[repo_id] = time.monotonic() + delay
        self._wake_at(time.monotonic() + delay)

    async def aclose(self) -> None:
        """Cancel lookups in flight, close the client."""
        if self._wake is not None:
            self._wake.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()


class ModelCatalog:
    """The sightings of every source, merged into the catalog, published on change and every interval."""

    def __init__(
        self, config: ModelCatalogConfig, ctx: ServiceContext, enricher: HfEnricher, changed: asyncio.Event
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.enricher = enricher
        self.sources: dict[str, SourceSightings] = {}
        self.entries: dict[str, CatalogEntry] = {}
        self.changed = changed  # set by new sightings and by finished HF lookups
        self._published: tuple[Any, ...] | None = None
        self.models = Gauge("inferwatch_catalog_models", "Models in the catalog.", registry=ctx.registry)
        self.publications = Counter(
            "inferwatch_catalog_publications", "Catalog snapshots published, by why.", ["reason"], registry=ctx.registry
        )

    async def on_event(self, event: AnyEvent, _subject: str) -> None:
        """Fold one bus event into the sources."""
        now = time.time()
        if isinstance(event, VllmInstanceSnapshot):
            self._replace(
                f"vllm:{event.source}",
                sightings_from_vllm(event),
                up=event.up and event.status == "ready",
                now=now,
                interval_s=event.interval_s,
            )
        elif isinstance(event, LitellmProxySnapshot):
            self._replace(
                f"litellm:{event.source}",
                sightings_from_litellm(event),
                up=event.up,
                now=now,
                interval_s=event.interval_s,
            )
        elif isinstance(event, DockerHostSnapshot):
            prefix = f"docker:{event.source}:"
            by_container = sightings_from_docker(event)
            for key in [k for k in self.sources if k.startswith(prefix) and k[len(prefix) :] not in by_container]:
                del self.sources[key]  # the container is gone from the host
            for cid, found in by_container.items():
                self._replace(prefix + cid, found, up=True, now=now, interval_s=event.interval_s)
        elif isinstance(event, ContainerLifecycle) and event.action in STOPPED_ACTIONS:
            key = f"docker:{event.host}:{event.source}"
            if (src := self.sources.get(key)) is not None:
                self.sources[key] = SourceSightings(unavailable(src.sightings), src.received_at, src.interval_s)
                self.changed.set()

    def _replace(self, key: str, found: list[Any], *, up: bool, now: float, interval_s: float) -> None:
        self.sources[key] = replace_source(self.sources.get(key), found, up=up, received_at=now, interval_s=interval_s)
        self.changed.set()

    def build(self, now: float) -> dict[str, CatalogEntry]:
        """Merge every live sighting, enrich from what the Hub said, start lookups for new repo ids."""
        sightings, forget = current_sightings(
            self.sources, now, stale_intervals=self.config.stale_intervals, retain_s=self.config.retain_s
        )
        for key in forget:
            del self.sources[key]
        merged = merge(sightings, self.entries)
        wanted: list[str] = []
        for name, entry in merged.items():
            if not is_repo_id(entry.model_id):
                continue
            record = self.enricher.record(entry.model_id)
            if record is None:
                wanted.append(entry.model_id)
            elif record.status in ("ok", "gated"):  # a gated record's info says gated
                merged[name] = enrich(entry, record.info)
        self.enricher.want(wanted)
        self.entries = merged
        self.models.set(len(merged))
        return merged

    async def publish(self, *, periodic: bool) -> bool:
        """Publish when periodic or when the catalog differs from the last one published."""
        now = time.time()
        entries = self.build(now)
        key = publish_key(entries)
        if not periodic and key == self._published:
            return False
        sent = await self.ctx.bus.publish(
            ModelCatalogSnapshot(
                source=self.config.name,
                observed_at=now,
                collector=self.ctx.instance,
                interval_s=self.config.interval_s,
                entries=list(entries.values()),
            )
        )
        if sent:
            self._published = key
            self.publications.labels("interval" if periodic else "change").inc()
        return sent


def readiness_reason(config: ModelCatalogConfig, cache: HfCache) -> str:
    """What ``/readyz`` says about enrichment."""
    if config.hf_offline:
        return "publishing the catalog; HF enrichment off (HF_HUB_OFFLINE)"
    where = f"JetStream key-value {config.kv_bucket}" if cache.kv is not None else "memory (JetStream unavailable)"
    return f"publishing the catalog; HF lookups cached in {where}"


async def run(ctx: ServiceContext, config: ModelCatalogConfig) -> None:
    """Collect, merge and publish until stopped."""
    cache = HfCache(config.hf_cache_ttl_s)
    kv_retry_at = time.monotonic()
    changed = asyncio.Event()
    enricher = HfEnricher(config, ctx.registry, cache, on_update=changed.set)
    catalog = ModelCatalog(config, ctx, enricher, changed)
    subscriptions = [await ctx.bus.subscribe(subject, catalog.on_event) for subject in SUBJECTS]
    try:
        periodic_publish = Ticker(config.interval_s)
        while not ctx.stop.is_set():
            if cache.kv is None and time.monotonic() >= kv_retry_at:
                await cache.open_kv(ctx.bus, config.kv_bucket)
                kv_retry_at = time.monotonic() + KV_RETRY_S
            ctx.set_ready(True, readiness_reason(config, cache))
            periodic = periodic_publish.due()
            catalog.changed.clear()
            await catalog.publish(periodic=periodic)
            if periodic:
                periodic_publish.advance()
            if await _wait_change(ctx, catalog.changed, periodic_publish.seconds_left()):
                return
            with contextlib.suppress(TimeoutError):  # let a burst settle
                await asyncio.wait_for(ctx.stop.wait(), DEBOUNCE_S)
    finally:
        for sub in subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await enricher.aclose()


async def _wait_change(ctx: ServiceContext, changed: asyncio.Event, timeout_s: float) -> bool:
    """Wait for a change, the next period or the stop; True when the service should stop."""
    stop = asyncio.create_task(ctx.stop.wait())
    change = asyncio.create_task(changed.wait())
    try:
        await asyncio.wait({stop, change}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stop, change):
            task.cancel()
        await asyncio.gather(stop, change, return_exceptions=True)
    return ctx.stop.is_set()

"""epp-scraper's I/O edges: scrape each EPP ``/metrics`` with a rotating bearer token, publish snapshots.

Targets come from three origins, like vllm-scraper's: static URLs, DNS specs re-resolved periodically, and
discovery events (``discovery.found/lost/targets`` with ``kind == "epp"``). A target stays while any origin names it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.base import Histogram
from inferwatch.contracts.discovery import ScrapeTarget, TargetFound, TargetLost, TargetSet
from inferwatch.contracts.epp import EppObjectiveStats, EppPoolStats, EppSnapshot
from inferwatch.contracts.subjects import subject_filter
from inferwatch.services.epp_scraper.config import EppScraperConfig
from inferwatch.services.epp_scraper.core import (
    WANTED,
    auth_failure_reason,
    detect_naming,
    objective_stats,
    pool_stats,
    scheduler_stats,
)
from inferwatch.shared.dns import Resolver, resolve_dns, resolve_specs
from inferwatch.shared.exposition import ExpositionError, parse_exposition
from inferwatch.shared.http import (
    BreakerPolicy,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
    strip_credentials,
)
from inferwatch.shared.service import ServiceApp, ServiceContext

log = logging.getLogger("inferwatch.epp_scraper")


class TokenFile:
    """A bearer token read from a file and re-read whenever the file changes (Kubernetes rotates it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""
        self.reads = 0

    def get(self, force: bool = False) -> str:
        """The current token (``""`` without a file or when unreadable)."""
        if not self.path:
            return ""
        try:
            st = os.stat(self.path)
        except OSError:
            return self._token
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if force or stamp != self._stamp:
            try:
                with open(self.path, encoding="utf-8") as f:
                    self._token = f.read().strip()
                self._stamp = stamp
                self.reads += 1
            except OSError as exc:
                log.warning("token file unreadable", extra={"path": self.path, "error": type(exc).__name__})
        return self._token


class EppScraper:
    """Scrapes the configured EPPs."""

    def __init__(self, config: EppScraperConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.token = TokenFile(config.token_file)
        self.metrics = UpstreamMetrics(ctx.registry)
        # One TLS context for every target: building one per client reloads the CA bundle each time.
        self._verify: ssl.SSLContext | bool = (
            False if config.insecure else ssl.create_default_context(cafile=config.tls_ca_file or None)
        )
        self.clients: dict[str, UpstreamClient] = {}
        self.origins: dict[str, set[str]] = {}  # url -> who names it: static, dns:<spec>, found, set:<source>
        self.errors_total: dict[str, dict[str, float]] = {}
        self.resolver: Resolver = resolve_dns
        self._next_dns = 0.0  # monotonic time of the next DNS re-resolution
        for url in config.targets:
            self.add(url, "static")

    # ---- the target set ---------------------------------------------------------------------

    def add(self, url: str, origin: str) -> None:
        """Start scraping ``url`` (or record one more ``origin`` naming it)."""
        url = url.rstrip("/")
        if url in self.clients:
            self.origins[url].add(origin)
            return
        self.clients[url] = UpstreamClient(
            "epp",
            url,
            metrics=self.metrics,
            timeout_s=self.config.timeout_s,
            retry=RetryPolicy(attempts=1),
            breaker=BreakerPolicy(failure_threshold=3, reset_after_s=self.config.interval_s),
            verify=self._verify,
        )
        self.origins[url] = {origin}
        self.errors_total.setdefault(url, {})
        log.info("EPP target added", extra={"target": strip_credentials(url), "origin": origin})

    async def remove(self, url: str, origin: str | None = None) -> bool:
        """Stop scraping ``url`` (``origin``: only once no other origin names it); True when it went."""
        url = url.rstrip("/")
        if url not in self.clients:
            return False
        if origin is not None:
            self.origins[url].discard(origin)
            if self.origins[url]:
                return False
        client = self.clients.pop(url)
        del self.origins[url]
        self.errors_total.pop(url, None)
        await client.aclose()
        log.info("EPP target removed", extra={"target": strip_credentials(url), "origin": origin or ""})
        return True

    async def reconcile(self, origin: str, urls: list[str], *, also: tuple[str, ...] = ()) -> list[str]:
        """Make ``origin``'s targets exactly ``urls`` (``also``: origins a full listing supersedes).

        Returns the URLs no longer scraped at all.
        """
        wanted = {u.rstrip("/") for u in urls}
        for url in sorted(wanted):
            self.add(url, origin)
            for other in also:
                self.origins[url].discard(other)
        gone = []
        for url in [u for u, names in self.origins.items() if u not in wanted and origin in names]:
            if await self.remove(url, origin):
                gone.append(url)
        return gone

    async def refresh_dns(self) -> None:
        """Re-resolve every DNS spec; a failed lookup keeps that spec's previous targets.

        A target whose record went away is dropped and announced with ``discovery.lost`` (kind ``epp``).
        """
        found = await resolve_specs(self.config.dns, self.resolver, self.config.dns_server, self.config.timeout_s)
        for spec, urls in found.items():
            for url in await self.reconcile("dns:" + spec, urls):
                await self.ctx.bus.publish(
                    TargetLost(
                        source="dns:" + spec,
                        observed_at=time.time(),
                        collector=self.ctx.instance,
                        target=ScrapeTarget(kind="epp", url=url, labels={"dns": spec}),
                        reason="dns_record_removed",
                    )
                )

    async def on_discovery(self, event: AnyEvent, _subject: str) -> None:
        """EPP targets found/lost by a discoverer (``ScrapeTarget.kind == "epp"``); our own announcements ignored."""
        if event.collector == self.ctx.instance:
            return
        if isinstance(event, TargetFound) and event.target.kind == "epp":
            self.add(event.target.url, "found")
        elif isinstance(event, TargetLost) and event.target.kind == "epp":
            url = event.target.url.rstrip("/")
            if url in self.origins:  # the discoverer says it is gone: static and DNS origins may keep it
                self.origins[url] = {o for o in self.origins[url] if o == "static" or o.startswith("dns:")}
                await self.remove(url, "found")
        elif isinstance(event, TargetSet):
            await self.reconcile(
                "set:" + event.source, [t.url for t in event.targets if t.kind == "epp"], also=("found",)
            )

    # ---- scraping ---------------------------------------------------------------------------

    async def scrape(self, url: str) -> EppSnapshot:
        """One scrape of one EPP; failures become ``up=False`` with a reason that says what to fix."""
        url = url.rstrip("/")
        client = self.clients[url]
        error, naming = "", ""
        objectives: list[EppObjectiveStats] = []
        pools: list[EppPoolStats] = []
        latency: Histogram | None = None
        attempts: dict[str, float] = {}
        flow: float | None = None
        token = self.token.get()
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else None
            try:
                response = await client.get("/metrics", endpoint="/metrics", headers=headers)
            except UpstreamError as exc:
                if exc.status == 401 and self.config.token_file:  # maybe rotated under us: re-read once
                    fresh = self.token.get(force=True)
                    if fresh and fresh != token:
                        response = await client.get(
                            "/metrics", endpoint="/metrics", headers={"Authorization": f"Bearer {fresh}"}
                        )
                    else:
                        raise
                else:
                    raise
            fams = parse_exposition(response.body, families=WANTED)
            naming = detect_naming(fams)
            objectives, pools = objective_stats(fams), pool_stats(fams)
            latency, attempts, flow = scheduler_stats(fams)
            if not naming:
                error = "no_epp_metrics: the target's /metrics has no EPP families (is it the EPP's metrics port?)"
        except UpstreamError as exc:
            error = auth_failure_reason(exc.status) if exc.status in (401, 403, 500) else exc.outcome
        except ExpositionError:
            error = "parse_error"
        if error:
            key = error.split(":", 1)[0]
            errors = self.errors_total.setdefault(url, {})
            errors[key] = errors.get(key, 0.0) + 1
            log.warning("EPP scrape failed", extra={"target": strip_credentials(url), "reason": error})
        return EppSnapshot(
            source=strip_credentials(url),
            observed_at=time.time(),
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            up=not error,
            error=error,
            naming=naming,
            objectives=objectives,
            pools=pools,
            scheduler_e2e_duration_seconds=latency,
            scheduler_attempts_total=attempts,
            flow_control_queue_size=flow,
        )

    async def cycle(self) -> None:
        """Re-resolve DNS when due, then scrape every target concurrently and publish the snapshots."""
        if self.config.dns and time.monotonic() >= self._next_dns:
            self._next_dns = time.monotonic() + (self.config.dns_interval_s or self.config.interval_s)
            await self.refresh_dns()
        snaps = await asyncio.gather(*(self.scrape(url) for url in list(self.clients)), return_exceptions=True)
        for snap in snaps:
            if isinstance(snap, EppSnapshot):
                await self.ctx.bus.publish(snap)
            else:
                log.error("EPP scrape crashed", extra={"error": type(snap).__name__})

    async def aclose(self) -> None:
        """Close the clients."""
        for url in list(self.clients):
            await self.remove(url)


async def run(ctx: ServiceContext, config: EppScraperConfig) -> None:
    """Scrape until stopped."""
    scraper = EppScraper(config, ctx)
    await ctx.bus.subscribe(subject_filter("discovery"), scraper.on_discovery)
    try:
        while True:
            await scraper.cycle()
            ctx.targets = len(scraper.clients)
            ctx.set_ready(
                True,
                f"scraping {len(scraper.clients)} EPP targets"
                if scraper.clients
                else "idle: no EPP targets configured, resolved or discovered yet",
            )
            if await ctx.sleep(config.interval_s):
                return
    finally:
        await scraper.aclose()


def build(ctx: ServiceContext, config: EppScraperConfig) -> ServiceApp:
    """The epp-scraper as `run_service` runs it."""
    return ServiceApp(run=lambda: run(ctx, config))

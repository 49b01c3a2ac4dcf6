"""epp-scraper's I/O edges: scrape each EPP ``/metrics`` with a rotating bearer token, publish snapshots."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time

from contracts.base import Histogram
from contracts.epp import EppObjectiveStats, EppPoolStats, EppSnapshot
from services.epp_scraper.config import EppScraperConfig
from services.epp_scraper.core import (
    WANTED,
    auth_failure_reason,
    detect_naming,
    objective_stats,
    pool_stats,
    scheduler_stats,
)
from shared.exposition import ExpositionError, parse_exposition
from shared.http import BreakerPolicy, RetryPolicy, UpstreamClient, UpstreamError, UpstreamMetrics
from shared.service import ServiceContext

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
        metrics = UpstreamMetrics(ctx.registry)
        verify: ssl.SSLContext | bool = False if config.insecure else ssl.create_default_context(
            cafile=config.tls_ca_file or None)
        self.clients = {url: UpstreamClient("epp", url, metrics=metrics, timeout_s=config.timeout_s,
                                            retry=RetryPolicy(attempts=1),
                                            breaker=BreakerPolicy(failure_threshold=3, reset_after_s=config.interval_s),
                                            verify=verify)
                        for url in config.targets}
        self.errors_total: dict[str, dict[str, float]] = {url: {} for url in config.targets}

    async def scrape(self, url: str) -> EppSnapshot:
        """One scrape of one EPP; failures become ``up=False`` with a reason that says what to fix."""
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
                        response = await client.get("/metrics", endpoint="/metrics",
                                                    headers={"Authorization": f"Bearer {fresh}"})
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
            self.errors_total[url][key] = self.errors_total[url].get(key, 0.0) + 1
            log.warning("EPP scrape failed", extra={"target": url, "reason": error})
        return EppSnapshot(source=url, observed_at=time.time(), collector=self.ctx.instance,
                           interval_s=self.config.interval_s, up=not error, error=error, naming=naming,
                           objectives=objectives, pools=pools, scheduler_e2e_seconds=latency,
                           scheduler_attempts_total=attempts, flow_control_queue_size=flow)

    async def cycle(self) -> None:
        """Scrape every target concurrently and publish the snapshots."""
        snaps = await asyncio.gather(*(self.scrape(url) for url in self.clients), return_exceptions=True)
        for snap in snaps:
            if isinstance(snap, EppSnapshot):
                await self.ctx.bus.publish(snap)
            else:
                log.error("EPP scrape crashed", extra={"error": type(snap).__name__})

    async def aclose(self) -> None:
        """Close the clients."""
        for client in self.clients.values():
            await client.aclose()


async def run(ctx: ServiceContext, config: EppScraperConfig) -> None:
    """Scrape until stopped."""
    scraper = EppScraper(config, ctx)
    ctx.targets = len(config.targets)
    ctx.set_ready(True, "")
    try:
        while True:
            await scraper.cycle()
            if await ctx.sleep(config.interval_s):
                return
    finally:
        await scraper.aclose()

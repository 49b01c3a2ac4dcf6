"""epp-scraper's I/O edges: scrape each EPP ``/metrics`` with a rotating bearer token, publish snapshots.

Targets come from settings, DNS and discovery events (``kind == "epp"``) through the shared
:class:`~inferwatch.shared.targets.ScrapeTargets`, as vllm-scraper's do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from inferwatch.contracts.discovery import ScrapeTarget
from inferwatch.contracts.epp import EppSnapshot
from inferwatch.contracts.subjects import subject_filter
from inferwatch.services.epp_scraper.config import EppScraperConfig
from inferwatch.services.epp_scraper.core import (
    WANTED,
    auth_failure_reason,
    snapshot_fields,
)
from inferwatch.shared.exposition import ExpositionError, parse_exposition
from inferwatch.shared.http import (
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


@dataclass
class EppTarget:
    """What the scraper keeps per EPP between scrapes."""

    target: ScrapeTarget
    client: UpstreamClient
    origins: set[str] = field(default_factory=set)
    errors_total: dict[str, float] = field(default_factory=dict)


async def _close(target: EppTarget) -> None:
    await target.client.aclose()


class EppScraper:
    """Scrapes the configured EPPs."""

    def __init__(self, config: EppScraperConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.token = TokenFile(config.token_file)
        self.metrics = UpstreamMetrics.of(ctx.registry)
        self._tls = TlsPolicy.from_ca_path(config.tls_ca_file, insecure=config.insecure)
        self._policy = CallPolicy(
            limits=Limits(timeout_s=config.timeout_s),
            retry=RetryPolicy(attempts=1),
            breaker=BreakerPolicy(failure_threshold=3, reset_after_s=config.interval_s),
        )
        self.targets: ScrapeTargets[EppTarget] = ScrapeTargets(
            "epp",
            ctx,
            create=self._open,
            dispose=_close,
            dns=DnsTargets(
                specs=config.dns,
                nameserver=config.dns_server,
                timeout_s=config.timeout_s,
                interval_s=config.dns_interval_s or config.interval_s,
            ),
        )
        for url in config.targets:
            self.targets.add(ScrapeTarget(kind="epp", url=url), STATIC)

    def _open(self, target: ScrapeTarget) -> EppTarget:
        client = UpstreamClient("epp", target.url, metrics=self.metrics, policy=self._policy, tls=self._tls)
        return EppTarget(target=target, client=client)

    # ---- scraping ---------------------------------------------------------------------------

    async def scrape(self, url: str) -> EppSnapshot:
        """One scrape of one EPP; failures become ``up=False`` with a reason that says what to fix."""
        url = url.rstrip("/")
        state = self.targets[url]
        client = state.client
        error = ""
        fields: dict[str, Any] = {}
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
            fields = snapshot_fields(parse_exposition(response.body, families=WANTED))
            if not fields["naming"]:
                error = "no_epp_metrics: the target's /metrics has no EPP families (is it the EPP's metrics port?)"
        except UpstreamError as exc:
            error = auth_failure_reason(exc.status) if exc.status in (401, 403, 500) else exc.outcome.value
        except ExpositionError:
            error = "parse_error"
        if error:
            key = error.split(":", 1)[0]
            state.errors_total[key] = state.errors_total.get(key, 0.0) + 1
            log.warning("EPP scrape failed", extra={"target": strip_credentials(url), "reason": error})
        return EppSnapshot(
            source=strip_credentials(url),
            observed_at=time.time(),
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            up=not error,
            error=error,
            **fields,
        )

    async def cycle(self) -> None:
        """Re-resolve DNS when due, then scrape every target concurrently and publish the snapshots."""
        await self.targets.refresh_dns_if_due()
        snaps = await asyncio.gather(*(self.scrape(url) for url in list(self.targets)), return_exceptions=True)
        for snap in snaps:
            if isinstance(snap, EppSnapshot):
                await self.ctx.bus.publish(snap)
            else:
                log.error("EPP scrape crashed", extra={"error": type(snap).__name__})

    async def aclose(self) -> None:
        """Close the clients."""
        await self.targets.aclose()


async def run(ctx: ServiceContext, config: EppScraperConfig) -> None:
    """Scrape until stopped."""
    scraper = EppScraper(config, ctx)
    await ctx.bus.subscribe(subject_filter("discovery"), scraper.targets.on_discovery)

    async def cycle() -> None:
        await scraper.cycle()
        ctx.targets = len(scraper.targets)
        ctx.set_ready(
            True,
            f"scraping {len(scraper.targets)} EPP targets"
            if scraper.targets
            else "idle: no EPP targets configured, resolved or discovered yet",
        )

    try:
        await run_every(config.interval_s, cycle, ctx.sleep)
    finally:
        await scraper.aclose()

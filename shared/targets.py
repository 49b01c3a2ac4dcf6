"""The set of targets a scraper reads, from three origins: settings, DNS and discovery events.

A target (one URL) stays while any origin names it: ``static`` (settings), ``dns:<spec>`` (a DNS name
re-resolved periodically through :mod:`inferwatch.shared.dns`), ``found`` (a ``discovery.found`` event) and
``set:<source>`` (a discoverer's full ``discovery.targets`` listing, which supersedes its ``found`` events).
A ``discovery.lost`` event drops the discovery origins only: settings and DNS may keep the target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.discovery import ScrapeTarget, TargetFound, TargetKind, TargetLost, TargetSet
from inferwatch.shared.dns import Resolver, resolve_dns, resolve_specs
from inferwatch.shared.http import strip_credentials
from inferwatch.shared.loop import Ticker
from inferwatch.shared.service import ServiceContext

log = logging.getLogger("inferwatch.targets")

STATIC = "static"
FOUND = "found"


class Tracked(Protocol):
    """What a scraper keeps per target; the set maintains these two fields."""

    target: ScrapeTarget
    origins: set[str]


T = TypeVar("T", bound=Tracked)


@dataclass(frozen=True)
class DnsTargets:
    """DNS specs (``dns+http://name:port``, ``dns+_svc._tcp.name``) and how they are resolved.

    Attributes:
        specs: the DNS specs from the settings.
        nameserver: ``host[:port]`` of the server to ask (empty: the system's).
        timeout_s: one lookup's deadline (at least 1 s).
        interval_s: how often the specs are re-resolved.
    """

    specs: tuple[str, ...] = ()
    nameserver: str = ""
    timeout_s: float = 5.0
    interval_s: float = 30.0


class ScrapeTargets(Mapping[str, T]):
    """A scraper's targets by URL (no trailing slash), with their origins.

    Args:
        kind: the ``ScrapeTarget.kind`` this scraper takes from discovery events (``vllm``, ``epp``).
        ctx: the service (its instance name and bus).
        create: builds the per-target state (its client…) for a new target.
        dispose: releases that state when the target goes.
        dns: DNS specs to resolve.
        on_added: told about each new target (e.g. to read it at once rather than at the next cycle).
    """

    def __init__(
        self,
        kind: TargetKind,
        ctx: ServiceContext,
        *,
        create: Callable[[ScrapeTarget], T],
        dispose: Callable[[T], Awaitable[None]],
        dns: DnsTargets = DnsTargets(),
        on_added: Callable[[T], None] | None = None,
    ) -> None:
        self.kind = kind
        self.ctx = ctx
        self.dns = dns
        self.resolver: Resolver = resolve_dns
        self._create = create
        self._dispose = dispose
        self._on_added = on_added
        self._targets: dict[str, T] = {}
        self._dns_due = Ticker(dns.interval_s)

    def __getitem__(self, url: str) -> T:
        return self._targets[url]

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def add(self, target: ScrapeTarget, origin: str) -> T:
        """Start tracking ``target`` (or record one more ``origin`` naming it, refreshing its container metadata)."""
        url = target.url.rstrip("/")
        state = self._targets.get(url)
        if state is not None:
            if target.container_id or not state.target.container_id:
                state.target = target
            state.origins.add(origin)
            return state
        state = self._targets[url] = self._create(target)
        state.origins = {origin}
        log.info("target added", extra={"kind": self.kind, "target": strip_credentials(url), "origin": origin})
        if self._on_added is not None:
            self._on_added(state)
        return state

    async def remove(self, url: str, origin: str | None = None) -> bool:
        """Stop tracking ``url`` (``origin``: only once no other origin names it); True when it went."""
        url = url.rstrip("/")
        state = self._targets.get(url)
        if state is None:
            return False
        if origin is not None:
            state.origins.discard(origin)
            if state.origins:
                return False
        del self._targets[url]
        await self._dispose(state)
        log.info("target removed", extra={"kind": self.kind, "target": strip_credentials(url), "origin": origin or ""})
        return True

    async def reconcile(self, origin: str, targets: list[ScrapeTarget], *, also: tuple[str, ...] = ()) -> list[str]:
        """Make ``origin``'s targets exactly ``targets`` (``also``: origins such a listing supersedes).

        Returns the URLs no longer tracked at all.
        """
        wanted = {t.url.rstrip("/") for t in targets}
        for target in targets:
            state = self.add(target, origin)
            state.origins.difference_update(also)
        gone = []
        for url in [u for u, s in self._targets.items() if u not in wanted and origin in s.origins]:
            if await self.remove(url, origin):
                gone.append(url)
        return gone

    async def on_discovery(self, event: AnyEvent, _subject: str) -> None:
        """Targets of our kind found, lost or listed by a discoverer; our own announcements are ignored."""
        if event.collector == self.ctx.instance:
            return
        if isinstance(event, TargetFound) and event.target.kind == self.kind:
            self.add(event.target, FOUND)
        elif isinstance(event, TargetLost) and event.target.kind == self.kind:
            state = self._targets.get(event.target.url.rstrip("/"))
            if state is not None:  # the discoverer says it is gone: settings and DNS may keep it
                state.origins = {o for o in state.origins if o == STATIC or o.startswith("dns:")}
                await self.remove(event.target.url, FOUND)
        elif isinstance(event, TargetSet):
            listed = [t for t in event.targets if t.kind == self.kind]
            await self.reconcile("set:" + event.source, listed, also=(FOUND,))

    async def refresh_dns_if_due(self) -> None:
        """Re-resolve the DNS specs when their interval has passed."""
        if self.dns.specs and self._dns_due.due():
            self._dns_due.advance()
            await self.refresh_dns()

    async def refresh_dns(self) -> None:
        """Re-resolve every DNS spec now; a failed lookup keeps that spec's previous targets.

        A target whose record went away is dropped and announced with ``discovery.lost``.
        """
        found = await resolve_specs(self.dns.specs, self.resolver, self.dns.nameserver, self.dns.timeout_s)
        for spec, urls in found.items():
            listed = [ScrapeTarget(kind=self.kind, url=u, labels={"dns": spec}) for u in urls]
            for url in await self.reconcile("dns:" + spec, listed):
                await self.ctx.bus.publish(
                    TargetLost(
                        source="dns:" + spec,
                        observed_at=time.time(),
                        collector=self.ctx.instance,
                        target=ScrapeTarget(kind=self.kind, url=url, labels={"dns": spec}),
                        reason="dns_record_removed",
                    )
                )

    async def aclose(self) -> None:
        """Drop every target, releasing its state."""
        for url in list(self._targets):
            await self.remove(url)

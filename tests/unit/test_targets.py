"""The shared scrape-target set: settings, DNS and discovery origins, one lifecycle for every scraper."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from inferwatch.contracts.discovery import ScrapeTarget, TargetFound, TargetLost, TargetSet
from inferwatch.shared.targets import STATIC, DnsTargets, ScrapeTargets


@dataclass
class Kept:
    target: ScrapeTarget
    origins: set[str] = field(default_factory=set)
    closed: bool = False


class Bus:
    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.published.append(event)


async def _close(state: Kept) -> None:
    state.closed = True


def _targets(dns: DnsTargets | None = None) -> tuple[ScrapeTargets[Kept], list[Kept], Any]:
    added: list[Kept] = []
    ctx = SimpleNamespace(instance="epp-scraper@me", bus=Bus())
    targets: ScrapeTargets[Kept] = ScrapeTargets(
        "epp",
        ctx,
        create=Kept,
        dispose=_close,
        dns=dns or DnsTargets(),
        on_added=added.append,  # type: ignore[arg-type]
    )
    return targets, added, ctx


def _epp(url: str, **kwargs: Any) -> ScrapeTarget:
    return ScrapeTarget(kind="epp", url=url, **kwargs)


async def test_discovery_origins_come_and_go_while_settings_keep_a_target() -> None:
    targets, added, _ = _targets()
    targets.add(_epp("http://static:9090/"), STATIC)
    now = time.time()
    found = TargetFound(source="c1", observed_at=now, collector="docker-watcher@h", target=_epp("http://static:9090"))
    await targets.on_discovery(found, "")
    await targets.on_discovery(
        TargetFound(source="c2", observed_at=now, collector="w", target=ScrapeTarget(kind="vllm", url="http://v:8000")),
        "",
    )
    assert dict(targets.items()).keys() == {"http://static:9090"}
    assert targets["http://static:9090"].origins == {STATIC, "found"}
    assert len(added) == 1  # one target, announced once
    await targets.on_discovery(TargetLost(source="c1", observed_at=now, collector="w", target=found.target), "")
    assert targets["http://static:9090"].origins == {STATIC}  # lost by discovery, kept by the settings

    listing = TargetSet(
        source="w",
        observed_at=now,
        collector="w",
        interval_s=5.0,
        targets=[_epp("http://a:9090"), _epp("http://b:9090")],
    )
    await targets.on_discovery(
        TargetFound(source="c3", observed_at=now, collector="w", target=_epp("http://a:9090")), ""
    )
    await targets.on_discovery(listing, "")
    assert targets["http://a:9090"].origins == {"set:w"}  # the full listing supersedes the found event
    gone = targets["http://b:9090"]
    await targets.on_discovery(TargetSet(source="w", observed_at=now, collector="w", interval_s=5.0, targets=[]), "")
    assert set(targets) == {"http://static:9090"}
    assert gone.closed

    mine = TargetFound(source="dns", observed_at=now, collector="epp-scraper@me", target=_epp("http://mine:9090"))
    await targets.on_discovery(mine, "")  # our own announcements are ignored
    assert "http://mine:9090" not in targets
    await targets.aclose()
    assert len(targets) == 0


def test_a_later_sighting_with_container_metadata_refreshes_it() -> None:
    targets, _, _ = _targets()
    targets.add(_epp("http://c:9090"), STATIC)
    targets.add(_epp("http://c:9090", container_id="abc", container_name="epp"), "found")
    assert targets["http://c:9090"].target.container_id == "abc"
    targets.add(_epp("http://c:9090"), "dns:x")  # a sighting without metadata keeps what we know
    assert targets["http://c:9090"].target.container_id == "abc"


async def test_dns_targets_follow_the_records_and_announce_losses() -> None:
    records = {"dns+_m._tcp.epp": ["http://10.0.0.1:9090", "http://10.0.0.2:9090"]}
    lookups = 0

    async def resolver(spec: str, _nameserver: str) -> list[str]:
        nonlocal lookups
        lookups += 1
        if spec not in records:
            raise OSError("no answer")
        return records[spec]

    targets, _, ctx = _targets(DnsTargets(specs=("dns+_m._tcp.epp",), interval_s=3600.0))
    targets.resolver = resolver
    await targets.refresh_dns_if_due()
    assert set(targets) == {"http://10.0.0.1:9090", "http://10.0.0.2:9090"}
    assert targets["http://10.0.0.1:9090"].target.labels == {"dns": "dns+_m._tcp.epp"}
    await targets.refresh_dns_if_due()  # not due for another hour
    assert lookups == 1

    records["dns+_m._tcp.epp"] = ["http://10.0.0.2:9090"]
    await targets.refresh_dns()
    assert set(targets) == {"http://10.0.0.2:9090"}
    [lost] = ctx.bus.published
    assert (lost.target.url, lost.reason, lost.collector) == (
        "http://10.0.0.1:9090",
        "dns_record_removed",
        ctx.instance,
    )

    del records["dns+_m._tcp.epp"]  # a failed lookup keeps the previous targets
    await targets.refresh_dns()
    assert set(targets) == {"http://10.0.0.2:9090"}
    assert len(ctx.bus.published) == 1

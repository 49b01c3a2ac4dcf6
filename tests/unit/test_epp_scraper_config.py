"""epp-scraper's pure parts: token file re-reads, settings parsing, discovery events to targets."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from inferwatch.contracts.discovery import ScrapeTarget, TargetFound, TargetLost, TargetSet
from inferwatch.services.epp_scraper.app import EppScraper, TokenFile
from inferwatch.services.epp_scraper.config import EppScraperConfig
from inferwatch.shared.dns import parse_dns_spec
from inferwatch.shared.settings import Env, SettingsError
from tests.support.epp import BusScraperContext, write_token


def test_token_file_is_reread_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path, "a")
    tf = TokenFile(str(path))
    assert tf.get() == "a"
    assert tf.get() == "a"
    assert tf.reads == 1
    write_token(path, "b")
    assert tf.get() == "b"
    assert tf.reads == 2
    assert TokenFile("").get() == ""
    assert TokenFile(str(tmp_path / "missing")).get() == ""


# ---- DNS and discovered targets (issue #6) --------------------------------------------------------


def test_config_splits_static_urls_and_dns_specs() -> None:
    cfg = EppScraperConfig.from_env(
        Env(
            {
                "INFERWATCH_EPP_TARGETS": "http://epp-a:9090/, dns+http://epp.ns.svc:9090, dns+_m._tcp.epp.ns.svc",
                "INFERWATCH_EPP_DNS_SERVER": "10.0.0.10:53",
                "INFERWATCH_EPP_DNS_INTERVAL_S": "30",
            }
        )
    )
    assert cfg.targets == ("http://epp-a:9090",)
    assert cfg.dns == ("dns+http://epp.ns.svc:9090", "dns+_m._tcp.epp.ns.svc")
    assert (cfg.dns_server, cfg.dns_interval_s) == ("10.0.0.10:53", 30.0)
    assert parse_dns_spec(cfg.dns[0]) == ("a", "epp.ns.svc", 9090)
    assert parse_dns_spec(cfg.dns[1]) == ("srv", "_m._tcp.epp.ns.svc", 0)
    for bad in ("dns+epp.ns.svc", "dns+https://epp.ns.svc:9090"):
        with pytest.raises(SettingsError, match="INFERWATCH_EPP_TARGETS"):
            EppScraperConfig.from_env(Env({"INFERWATCH_EPP_TARGETS": bad}))


async def test_discovered_epp_targets_found_lost_and_listed() -> None:
    ctx = BusScraperContext()
    scraper = EppScraper(EppScraperConfig(targets=("http://static:9090",)), ctx)  # type: ignore[arg-type]
    now = time.time()
    try:
        found = TargetFound(
            source="c1",
            observed_at=now,
            collector="docker-watcher@h:1",
            target=ScrapeTarget(kind="epp", url="http://10.0.0.5:9090/"),
        )
        await scraper.targets.on_discovery(found, "")
        await scraper.targets.on_discovery(
            TargetFound(
                source="c2",
                observed_at=now,
                collector="docker-watcher@h:1",
                target=ScrapeTarget(kind="vllm", url="http://10.0.0.6:8000"),
            ),
            "",
        )
        assert set(scraper.targets) == {"http://static:9090", "http://10.0.0.5:9090"}
        await scraper.targets.on_discovery(
            TargetLost(source="c1", observed_at=now, collector="docker-watcher@h:1", target=found.target), ""
        )
        assert set(scraper.targets) == {"http://static:9090"}
        listing = TargetSet(
            source="docker-watcher@h:1",
            observed_at=now,
            collector="docker-watcher@h:1",
            interval_s=5.0,
            targets=[
                ScrapeTarget(kind="epp", url="http://10.0.0.7:9090"),
                ScrapeTarget(kind="epp", url="http://static:9090"),
            ],
        )
        await scraper.targets.on_discovery(listing, "")
        assert set(scraper.targets) == {"http://static:9090", "http://10.0.0.7:9090"}
        await scraper.targets.on_discovery(msgspec.structs.replace(listing, targets=[]), "")
        assert set(scraper.targets) == {"http://static:9090"}  # still configured statically
    finally:
        await scraper.aclose()

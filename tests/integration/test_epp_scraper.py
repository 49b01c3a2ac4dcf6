"""epp-scraper against the token-protected EPP simulator: token rotation, 401/403/500 reasons, end to end."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from inferwatch.contracts.discovery import TargetLost
from inferwatch.services.aggregator.domains.epp import render_epp
from inferwatch.services.aggregator.render import SeriesWriter
from inferwatch.services.epp_scraper.app import EppScraper
from inferwatch.services.epp_scraper.config import EppScraperConfig
from inferwatch.simulators.epp import NAMINGS, EppSimulator
from tests.support import get_text, running_service, wait_until
from tests.support.dns import SrvServer
from tests.support.epp import BusScraperContext, ScraperContext, write_token


@pytest.mark.parametrize("naming", NAMINGS)
async def test_scrape_each_naming_generation_with_token(tmp_path: Path, naming: str) -> None:
    sim = EppSimulator(token="t1", naming=naming)
    runner, url = await sim.serve()
    token = tmp_path / "token"
    write_token(token, "t1")
    scraper = EppScraper(EppScraperConfig(targets=(url,), token_file=str(token)), ScraperContext())  # type: ignore[arg-type]
    try:
        snap = await scraper.scrape(url)
    finally:
        await scraper.aclose()
        await runner.cleanup()
    assert snap.up, snap.error
    assert snap.naming == naming
    assert {p.pool for p in snap.pools} == {"vllm-qwen3-pool", "vllm-llama-pool"}
    assert sum(o.requests_total or 0 for o in snap.objectives) == sum(sim.requests.values())
    w = SeriesWriter()
    render_epp(snap, w)
    text = "".join(w.freeze().values())
    assert re.search(
        r'inferwatch_epp_requests_total\{target="[^"]+",model_name="qwen3-8b",target_model_name='
        r'"qwen3-8b"\} \d+',
        text,
    )
    assert 'inferwatch_epp_pool_ready_endpoints{target="' in text


async def test_token_rotation_and_auth_failures_say_what_to_fix(tmp_path: Path) -> None:
    sim = EppSimulator(token="old")
    runner, url = await sim.serve()
    token = tmp_path / "token"
    write_token(token, "old")
    scraper = EppScraper(EppScraperConfig(targets=(url,), token_file=str(token)), ScraperContext())  # type: ignore[arg-type]
    try:
        assert (await scraper.scrape(url)).up
        sim.token = "new"  # the cluster rotated the token ...
        write_token(token, "new")  # ... and the kubelet refreshed the projected file
        snap = await scraper.scrape(url)
        assert snap.up, snap.error
        assert scraper.token.get() == "new"
        sim.token = "other"  # token rejected
        snap = await scraper.scrape(url)
        assert not snap.up
        assert snap.error.startswith("unauthorized")
        assert "TokenReview" in snap.error
        sim.token, sim.forbidden_tokens = "new", {"new"}  # valid token, no RBAC for /metrics
        snap = await scraper.scrape(url)
        assert snap.error.startswith("forbidden")
        assert "nonResourceURLs" in snap.error
        sim.forbidden_tokens, sim.tokenreview_broken = set(), True  # EPP lacks system:auth-delegator
        snap = await scraper.scrape(url)
        assert "system:auth-delegator" in snap.error
        assert "new" not in snap.error  # the token never appears in an error
        assert scraper.targets[url].errors_total == {"unauthorized": 1.0, "forbidden": 1.0, "server_error": 1.0}
    finally:
        await scraper.aclose()
        await runner.cleanup()


async def test_epp_end_to_end_through_nats_to_aggregator(nats_url: str, tmp_path: Path) -> None:
    sim = EppSimulator(token="sa-token", naming="inference_objective")
    runner, url = await sim.serve()
    token = tmp_path / "token"
    write_token(token, "sa-token")
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_EPP_TARGETS": url,
        "INFERWATCH_EPP_TOKEN_FILE": str(token),
        "INFERWATCH_EPP_INTERVAL_S": "0.5",
        "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("epp-scraper", env),
        ):

            async def body_with(pattern: str) -> str | None:
                body = await get_text(agg.url + "/metrics")
                return body if re.search(pattern, body) else None

            body = await wait_until(
                lambda: body_with(
                    rf'inferwatch_epp_pool_average_kv_cache_utilization_ratio\{{target="{re.escape(url)}",'
                    r'pool="vllm-llama-pool"\} [0-9.]+'
                ),
                timeout=10,
                what="EPP pool series in the aggregator",
            )
            assert f'inferwatch_epp_info{{target="{url}",naming="inference_objective"}} 1' in body
            assert re.search(
                rf'inferwatch_epp_scheduler_attempts_total\{{target="{re.escape(url)}",'
                r'status="success"\} \d+',
                body,
            )
    finally:
        await runner.cleanup()


# ---- DNS and discovered targets (issue #6) --------------------------------------------------------


async def _srv_server() -> tuple[SrvServer, asyncio.DatagramTransport, str]:
    """vllm-scraper's loopback SRV server (shared by import), and its ``ip:port``."""
    server = SrvServer()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0)
    )
    return server, transport, "127.0.0.1:{}".format(transport.get_extra_info("sockname")[1])


async def test_dns_a_record_target_is_scraped(tmp_path: Path) -> None:
    sim = EppSimulator(token="t")
    runner, url = await sim.serve()
    port = int(url.rsplit(":", 1)[1])
    write_token(tmp_path / "token", "t")
    cfg = EppScraperConfig(dns=(f"dns+http://localhost:{port}",), token_file=str(tmp_path / "token"))
    scraper = EppScraper(cfg, BusScraperContext())  # type: ignore[arg-type]
    try:
        await scraper.targets.refresh_dns()
        assert scraper.targets, "localhost resolved to no address"
        snaps = [await scraper.scrape(u) for u in scraper.targets]
    finally:
        await scraper.aclose()
        await runner.cleanup()
    assert any(s.up for s in snaps), [s.error for s in snaps]


async def test_srv_targets_come_and_go_and_losses_are_published(tmp_path: Path) -> None:
    sims = [EppSimulator(token="t") for _ in range(2)]
    served = [await sim.serve() for sim in sims]
    urls = [url for _, url in served]
    server, transport, ns = await _srv_server()
    ctx = BusScraperContext()
    write_token(tmp_path / "token", "t")
    scraper = EppScraper(
        EppScraperConfig(
            dns=("dns+_metrics._tcp.epp.test.internal",),
            dns_server=ns,
            targets=(urls[1],),
            token_file=str(tmp_path / "token"),
        ),
        ctx,
    )  # type: ignore[arg-type]
    try:
        server.records = [("127.0.0.1", int(urls[0].rsplit(":", 1)[1]))]
        await scraper.targets.refresh_dns()
        assert set(scraper.targets) == set(urls)
        snaps = [await scraper.scrape(u) for u in urls]
        assert all(s.up for s in snaps), [s.error for s in snaps]
        server.records = [("127.0.0.1", int(urls[1].rsplit(":", 1)[1]))]  # the record moved to the static one
        await scraper.targets.refresh_dns()
        assert set(scraper.targets) == {urls[1]}
        assert scraper.targets[urls[1]].origins == {"static", "dns:dns+_metrics._tcp.epp.test.internal"}
        lost = [e for e in ctx.bus.published if isinstance(e, TargetLost)]
        assert [(e.target.kind, e.target.url, e.reason) for e in lost] == [("epp", urls[0], "dns_record_removed")]
        server.records = []  # an empty answer (NoAnswer) is a failed lookup: previous targets kept
        await scraper.targets.refresh_dns()
        assert set(scraper.targets) == {urls[1]}
        assert len([e for e in ctx.bus.published if isinstance(e, TargetLost)]) == 1
    finally:
        transport.close()
        await scraper.aclose()
        for runner, _ in served:
            await runner.cleanup()


async def test_epp_dns_targets_end_to_end(nats_url: str, tmp_path: Path) -> None:
    sims = [EppSimulator(token="t", naming="inference_objective") for _ in range(2)]
    served = [await sim.serve() for sim in sims]
    urls = [url for _, url in served]
    server, transport, ns = await _srv_server()
    server.records = [("127.0.0.1", int(urls[0].rsplit(":", 1)[1]))]
    write_token(tmp_path / "token", "t")
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_EPP_TARGETS": "dns+_metrics._tcp.epp.test.internal",
        "INFERWATCH_EPP_DNS_SERVER": ns,
        "INFERWATCH_EPP_TOKEN_FILE": str(tmp_path / "token"),
        "INFERWATCH_EPP_INTERVAL_S": "0.5",
        "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("epp-scraper", env) as scraper,
        ):

            async def info_for(url: str) -> bool:
                return f'inferwatch_epp_info{{target="{url}",naming="inference_objective"}} 1' in await get_text(
                    agg.url + "/metrics"
                )

            async def readiness_says(text: str) -> bool:
                return text in await get_text(scraper.url + "/readyz")

            await wait_until(lambda: info_for(urls[0]), timeout=10, what="SRV-resolved EPP in the aggregator")
            server.records = [("127.0.0.1", int(urls[1].rsplit(":", 1)[1]))]
            await wait_until(lambda: info_for(urls[1]), timeout=10, what="moved SRV record's EPP scraped")
            await wait_until(lambda: readiness_says("scraping 1 EPP targets"), timeout=10, what="old EPP dropped")
    finally:
        transport.close()
        for runner, _ in served:
            await runner.cleanup()

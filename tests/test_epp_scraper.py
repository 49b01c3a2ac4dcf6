"""epp-scraper against the token-protected EPP simulator: token rotation, 401/403/500 reasons, end to end."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from services.aggregator.__main__ import main as aggregator_main
from services.aggregator.__main__ import routes as aggregator_routes
from services.aggregator.domains.epp import render_epp
from services.aggregator.render import SeriesWriter
from services.epp_scraper.__main__ import main as scraper_main
from services.epp_scraper.app import EppScraper, TokenFile
from services.epp_scraper.config import EppScraperConfig
from simulators.epp import NAMINGS, EppSimulator
from tests.conftest import get_text, running_service, wait_until


class _Ctx:
    """The few ServiceContext attributes EppScraper uses outside a running service."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry()
        self.instance = "epp-scraper@test"


def write_token(path: Path, token: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)  # kubelet swaps the file atomically (new inode)


@pytest.mark.parametrize("naming", NAMINGS)
async def test_scrape_each_naming_generation_with_token(tmp_path: Path, naming: str) -> None:
    sim = EppSimulator(token="t1", naming=naming)
    runner, url = await sim.serve()
    token = tmp_path / "token"
    write_token(token, "t1")
    scraper = EppScraper(EppScraperConfig(targets=(url,), token_file=str(token)), _Ctx())  # type: ignore[arg-type]
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
    assert re.search(r'inferwatch_epp_requests_total\{target="[^"]+",model_name="qwen3-8b",target_model_name='
                     r'"qwen3-8b"\} \d+', text)
    assert 'inferwatch_epp_pool_ready_endpoints{target="' in text


async def test_token_rotation_and_auth_failures_say_what_to_fix(tmp_path: Path) -> None:
    sim = EppSimulator(token="old")
    runner, url = await sim.serve()
    token = tmp_path / "token"
    write_token(token, "old")
    scraper = EppScraper(EppScraperConfig(targets=(url,), token_file=str(token)), _Ctx())  # type: ignore[arg-type]
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
        assert scraper.errors_total[url] == {"unauthorized": 1.0, "forbidden": 1.0, "server_error": 1.0}
    finally:
        await scraper.aclose()
        await runner.cleanup()


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


async def test_epp_end_to_end_through_nats_to_aggregator(nats_url: str, tmp_path: Path) -> None:
    sim = EppSimulator(token="sa-token", naming="inference_objective")
    runner, url = await sim.serve()
    token = tmp_path / "token"
    write_token(token, "sa-token")
    env = {"NATS_URL": nats_url, "INFERWATCH_EPP_TARGETS": url,
           "INFERWATCH_EPP_TOKEN_FILE": str(token), "INFERWATCH_EPP_INTERVAL_S": "0.5",
           "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2"}
    try:
        async with (
            running_service("aggregator", aggregator_main, env, routes=aggregator_routes) as agg,
            running_service("epp-scraper", scraper_main, env),
        ):
            async def body_with(pattern: str) -> str | None:
                body = await get_text(agg.url + "/metrics")
                return body if re.search(pattern, body) else None

            body = await wait_until(lambda: body_with(
                rf'inferwatch_epp_pool_average_kv_cache_utilization_ratio\{{target="{re.escape(url)}",'
                r'pool="vllm-llama-pool"\} [0-9.]+'), timeout=10, what="EPP pool series in the aggregator")
            assert f'inferwatch_epp_info{{target="{url}",naming="inference_objective"}} 1' in body
            assert re.search(rf'inferwatch_epp_scheduler_attempts_total\{{target="{re.escape(url)}",'
                             r'status="success"\} \d+', body)
    finally:
        await runner.cleanup()

"""The aggregator's status page in a real headless browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest
from aiohttp import web

from inferwatch.contracts.catalog import CatalogEntry, ModelCatalogSnapshot
from inferwatch.contracts.gpu import GpuHostSnapshot
from inferwatch.contracts.supervisor import SupervisedChild, SupervisorSnapshot
from inferwatch.services.aggregator.domains.gpu import render_gpu_host
from inferwatch.services.aggregator.render import SeriesWriter
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.aggregator.status_page import status_payload, status_routes
from tests.conftest import free_port, require_tool


def _catalog() -> ModelCatalogSnapshot:
    return ModelCatalogSnapshot(
        source="catalog",
        observed_at=time.time(),
        collector="c",
        interval_s=1.0,
        entries=[
            CatalogEntry(
                name="qwen3-8b",
                model_id="Qwen/Qwen3-8B",
                providers=["vllm"],
                available=True,
                endpoints=["http://10.0.0.5:8000"],
                parameter_count=8_190_000_000,
                hf_url="https://huggingface.co/Qwen/Qwen3-8B",
            ),
            CatalogEntry(
                name="bge-m3",
                model_id="BAAI/bge-m3",
                model_type="embedding",
                providers=["litellm"],
                endpoints=["http://litellm:4000"],
                available=False,
            ),
        ],
    )


def _noop(_event: object, _w: SeriesWriter) -> None:
    pass


def _supervisor() -> SupervisorSnapshot:
    return SupervisorSnapshot(
        source="up@host:1",
        observed_at=time.time(),
        collector="up@host:1",
        interval_s=1.0,
        children=[
            SupervisedChild(name="aggregator", state="running", pid=42),
            SupervisedChild(name="litellm-poller", state="backoff", restarts_total=5, last_exit_code=2),
        ],
    )


def make_aggregator() -> SimpleNamespace:
    table = SourceTable(
        {GpuHostSnapshot: render_gpu_host, ModelCatalogSnapshot: _noop, SupervisorSnapshot: _noop}, tombstone_s=600.0
    )
    now = time.monotonic()
    table.apply(
        GpuHostSnapshot(
            source="gpu-host-1", observed_at=time.time(), collector="c", interval_s=1.0, nvml_available=True
        ),
        now,
    )
    table.apply(_catalog(), now)
    table.apply(_supervisor(), now)
    return SimpleNamespace(table=table)


def test_status_payload_lists_sources_and_models() -> None:
    payload = status_payload(make_aggregator())
    assert {s["source"] for s in payload["sources"]} == {"gpu-host-1", "catalog", "up@host:1"}
    assert all(s["state"] == "up" for s in payload["sources"])
    assert [m["name"] for m in payload["models"]] == ["bge-m3", "qwen3-8b"]
    assert payload["alerts"] == []
    assert [(p["name"], p["state"], p["restarts_total"]) for p in payload["processes"]] == [
        ("aggregator", "running", 0),
        ("litellm-poller", "backoff", 5),
    ]


async def test_status_page_in_headless_chromium() -> None:
    chromium = require_tool("chromium")
    playwright_api = pytest.importorskip("playwright.async_api")
    aggregator = make_aggregator()
    app = web.Application()
    app.add_routes(status_routes(aggregator))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/?refresh_ms=200"
    try:
        async with httpx.AsyncClient() as client:
            assert "text/html" in (await client.get(url)).headers["content-type"]
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
                await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
                page = await context.new_page()
                await page.goto(url)
                await page.wait_for_selector('[data-model="qwen3-8b"]')
                assert await page.locator('[data-model="bge-m3"]').count() == 1
                crash_looping = await page.locator('li[data-process="litellm-poller"].down').inner_text()
                assert "5 restarts" in crash_looping
                assert "last exit 2" in crash_looping
                # search
                await page.fill("#search", "qwen")
                assert await page.locator('[data-model="bge-m3"]').count() == 0
                assert await page.locator('[data-model="qwen3-8b"]').count() == 1
                text = await page.locator('[data-model="qwen3-8b"]').inner_text()
                assert "client.chat.completions.create" in text
                assert "curl http://10.0.0.5:8000/v1/chat/completions" in text
                # copy
                await page.click('[data-model="qwen3-8b"] button.copy')
                await page.wait_for_function("document.body.dataset.copied === 'http://10.0.0.5:8000'")
                # a source going down shows without a reload
                assert await page.locator('li[data-source="gpu-host-1"].up').count() == 1
                aggregator.table.expire(time.monotonic() + 3600)
                await page.wait_for_selector('li[data-source="gpu-host-1"].down', timeout=5000)
                # not a reload: the search box kept its text
                assert await page.input_value("#search") == "qwen"
                # readable on a phone: nothing wider than the viewport
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390
            finally:
                await browser.close()
    finally:
        await runner.cleanup()

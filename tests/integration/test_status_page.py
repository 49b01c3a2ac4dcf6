"""The aggregator's status page in a real headless browser (Debian chromium driven by Playwright), at a desktop
and a phone width. Screenshots of both are kept under test-artifacts/status-page/ (git-ignored; the path is
printed) for a person to look at."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiohttp import web

from inferwatch.services.aggregator.status_page import status_routes
from tests.support import ROOT, free_port, require_tool
from tests.support.aggregator import burning_slos, economics_tracker, populated_aggregator, serving_snapshot

ARTIFACTS = ROOT / "test-artifacts" / "status-page"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
async def served() -> AsyncIterator[tuple[SimpleNamespace, str]]:
    """A populated aggregator state behind the real status routes; yields it and the page's URL."""
    aggregator = populated_aggregator()
    aggregator.economics = economics_tracker()
    aggregator.slos = burning_slos(time.time())
    app = web.Application()
    app.add_routes(status_routes(aggregator))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield aggregator, f"http://127.0.0.1:{port}/?refresh_ms=200"
    finally:
        await runner.cleanup()


async def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"\nscreenshot: {path}")
    return path


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
async def test_status_page_leads_with_models_in_headless_chromium(
    served: tuple[SimpleNamespace, str], viewport: str
) -> None:
    chromium = require_tool("chromium")
    playwright_api = pytest.importorskip("playwright.async_api")
    aggregator, url = served
    size = VIEWPORTS[viewport]
    async with httpx.AsyncClient() as client:
        assert "text/html" in (await client.get(url)).headers["content-type"]
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport=size)
            await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
            page = await context.new_page()
            await page.goto(url)
            await page.wait_for_selector('[data-model="qwen3-8b"] dl.figures')

            # models first: the first card is on the first screen, above the GPUs, proxies and projects
            top = await page.evaluate("document.querySelector('[data-model=\"qwen3-8b\"]').getBoundingClientRect().top")
            assert top < size["height"]
            order = await page.evaluate(
                """() => ["#models", "#gpus", "#proxies", "#projects", "#sources", "#own"]
                     .map(s => document.querySelector(s).getBoundingClientRect().top)"""
            )
            assert order == sorted(order)
            # available before unavailable; live figures and catalog facts on the card
            names = await page.locator("[data-model]").evaluate_all("els => els.map(e => e.dataset.model)")
            assert names == ["qwen3-8b", "bge-m3"]
            card = await page.locator('[data-model="qwen3-8b"]').inner_text()
            for text in ("available", "llm", "p95 latency", "750 ms", "8.2B parameters", "http://10.0.0.5:8000"):
                assert text in card, (text, card)
            assert "requests" not in card  # one snapshot: no rate yet, and no made-up zero
            # the unit economics are rows of the same figures list; the card shows its SLOs, the objectives all
            assert "self-hosted USD per million total tokens" in card
            assert "10.0000" in card
            slo = await page.locator('[data-model="qwen3-8b"] [data-slo="vllm-availability"]').inner_text()
            assert "objective 99.0%, error budget left 0.0% of 30d" in slo
            assert await page.locator('#slos [data-slo="vllm-availability"]').count() == 1
            # the next scrape, 15 s of vLLM time later with 150 more requests: the rate appears without a reload
            seen_at = next(e.event.observed_at for e in aggregator.table.sources.values() if e.domain == "vllm")
            aggregator.table.apply(serving_snapshot(seen_at + 15, 250), time.monotonic())
            await page.wait_for_function(
                "document.querySelector('[data-model=\"qwen3-8b\"]').innerText.includes('10.00/s')", timeout=15000
            )
            assert await page.locator('[data-model="qwen3-8b"] a[href="https://huggingface.co/Qwen/Qwen3-8B"]').count()
            assert "unavailable" in await page.locator('[data-model="bge-m3"]').inner_text()

            # GPUs per host, with the container and the model on each
            gpu = await page.locator('[data-gpu="gpu-host-1/0"]').inner_text()
            assert "H100" in gpu
            assert "71% busy" in gpu
            assert "vllm-qwen serving qwen3-8b" in gpu
            # LiteLLM proxies and Langfuse projects, with state and reason
            proxy = page.locator('li[data-proxy="http://litellm:4000"].degraded')
            assert "timeout" in await proxy.inner_text()
            assert await page.locator('li[data-project="prod"].up').count() == 1

            # inferwatch's own parts: collapsed, summed up in the summary line, there when opened
            assert not await page.locator("details#own").evaluate("d => d.open")
            assert not await page.locator('li[data-process="litellm-poller"]').is_visible()
            summary = await page.locator("#own-summary").inner_text()
            assert summary == "inferwatch itself: 3 sources, 2 processes, 1 not up"
            assert await page.locator('#sources li[data-source="vllm-scraper@h:1"]').count() == 0
            await _screenshot(page, f"{viewport}")
            await page.click("#own-summary")
            crash_looping = await page.locator('li[data-process="litellm-poller"].down').inner_text()
            assert "5 restarts" in crash_looping
            assert "last exit 2" in crash_looping
            assert await page.locator('#own-sources li[data-source="vllm-scraper@h:1"]').is_visible()

            # search, the usage snippet and copying the endpoint
            await page.fill("#search", "qwen")
            assert await page.locator('[data-model="bge-m3"]').count() == 0
            await page.click('[data-model="qwen3-8b"] details.usage summary')
            text = await page.locator('[data-model="qwen3-8b"]').inner_text()
            assert "client.chat.completions.create" in text
            assert "curl http://10.0.0.5:8000/v1/chat/completions" in text
            await page.click('[data-model="qwen3-8b"] button.copy')
            await page.wait_for_function("document.body.dataset.copied === 'http://10.0.0.5:8000'")

            # a redraw (the next scrape changes the rate) keeps the open snippet and the search box as they were
            aggregator.table.apply(serving_snapshot(seen_at + 30, 550), time.monotonic())
            await page.wait_for_function(
                "document.querySelector('[data-model=\"qwen3-8b\"]').innerText.includes('20.00/s')", timeout=15000
            )
            assert await page.locator('[data-model="qwen3-8b"] details.usage').evaluate("d => d.open")
            assert await page.input_value("#search") == "qwen"
            # a source going down shows without a reload
            assert await page.locator('li[data-source="gpu-host-1"].up').count() == 1
            aggregator.table.expire(time.monotonic() + 3600)
            await page.wait_for_selector('li[data-source="gpu-host-1"].down', timeout=15000)
            # ... and systems that stopped reporting stay in their sections, shown down
            assert await page.locator('li[data-proxy="http://litellm:4000"].down').count() == 1
            assert await page.locator('li[data-project="prod"].down').count() == 1
            assert "down" in await page.locator('[data-host="gpu-host-1"] .badge').inner_text()
            # nothing wider than the viewport, at either width
            assert await page.evaluate("document.documentElement.scrollWidth") <= size["width"]
            await _screenshot(page, f"{viewport}-expanded")
        finally:
            await browser.close()

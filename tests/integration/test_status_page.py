"""The aggregator's status page in a real headless browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import time

import httpx
import pytest
from aiohttp import web

from inferwatch.services.aggregator.status_page import status_routes
from tests.support import free_port, require_tool
from tests.support.aggregator import burning_slos, economics_tracker, make_aggregator


async def test_status_page_in_headless_chromium() -> None:
    chromium = require_tool("chromium")
    playwright_api = pytest.importorskip("playwright.async_api")
    aggregator = make_aggregator()
    aggregator.economics = economics_tracker()
    aggregator.slos = burning_slos(time.time())
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
                # the model's card shows its SLOs, and the objectives list all of them
                slo = await page.locator('[data-model="qwen3-8b"] [data-slo="vllm-availability"]').inner_text()
                assert "objective 99.0%, error budget left 0.0% of 30d" in slo
                assert await page.locator('#slos [data-slo="vllm-availability"]').count() == 1
                # search
                await page.fill("#search", "qwen")
                assert await page.locator('[data-model="bge-m3"]').count() == 0
                assert await page.locator('[data-model="qwen3-8b"]').count() == 1
                text = await page.locator('[data-model="qwen3-8b"]').inner_text()
                assert "client.chat.completions.create" in text
                assert "curl http://10.0.0.5:8000/v1/chat/completions" in text
                # the model's unit economics, from the status JSON's one list per model
                economics = await page.locator('[data-model="qwen3-8b"] [data-economics="qwen3-8b"]').inner_text()
                assert "self-hosted USD per million total tokens" in economics
                assert "10.0000" in economics
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

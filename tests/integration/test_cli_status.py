"""`inferwatch status` as a user runs it: a subprocess reading a real aggregator status route over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from inferwatch.services.aggregator.status_page import status_routes
from tests.support import free_port
from tests.support.aggregator import make_aggregator

TOKEN = "status-token-marker"


@pytest.fixture
async def status_url() -> AsyncIterator[str]:
    """The status routes of an aggregator state with a catalog, a GPU host and `up`'s children, behind a token."""

    @web.middleware
    async def bearer(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        return await handler(request)

    app = web.Application(middlewares=[bearer])
    app.add_routes(status_routes(make_aggregator()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _status(*args: str, token: str = TOKEN) -> tuple[int, str, str]:
    env = {**os.environ, "INFERWATCH_HTTP_AUTH_BEARER_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inferwatch", "status", *args, env=env, stdout=-1, stderr=-1
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_prints_models_alerts_and_sources_as_tables(status_url: str) -> None:
    rc, out, err = await _status("--url", status_url)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"inferwatch status  {status_url}")
    assert "MODELS (1 of 2 available)" in out
    assert any(line.split()[:2] == ["qwen3-8b", "available"] and "http://10.0.0.5:8000" in line for line in lines)
    assert "FIRING ALERTS (0)" in out
    assert any(line.split()[:3] == ["gpu/host", "gpu-host-1", "up"] for line in lines)
    assert "inferwatch itself: 2 sources, 0 not up (all up)" in out


async def test_status_json_is_the_status_payload(status_url: str) -> None:
    rc, out, err = await _status("--url", status_url, "--json")
    assert rc == 0, err
    payload = json.loads(out)
    assert [m["name"] for m in payload["models"]] == ["qwen3-8b", "bge-m3"]
    assert {"models", "gpu_hosts", "proxies", "projects", "alerts", "sources", "processes"} <= set(payload)


async def test_status_watch_repeats_until_ctrl_c(status_url: str) -> None:
    env = {**os.environ, "INFERWATCH_HTTP_AUTH_BEARER_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "inferwatch", "status", "--url", status_url, "--watch", "--json", "--interval", "0.1"),
        env=env,
        stdout=-1,
        stderr=-1,
    )
    try:
        assert proc.stdout is not None
        polls = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 30)) for _ in range(3)]
        assert all(p["models"][0]["name"] == "qwen3-8b" for p in polls)
        assert polls[0]["generated_at"] < polls[2]["generated_at"]
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_status_says_why_when_the_aggregator_refuses_or_is_absent(status_url: str) -> None:
    rc, out, err = await _status("--url", status_url, token="wrong")
    assert rc == 1
    assert out == ""
    assert "401" in err
    assert "wrong" not in err
    rc, _, err = await _status("--url", f"http://127.0.0.1:{free_port()}")
    assert rc == 1
    assert "ConnectError" in err

"""litellm-poller for real: simulated LiteLLM proxies over loopback HTTP → poller → NATS → aggregator."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import httpx
import msgspec
import pytest

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.subjects import subject_filter
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.exposition import parse_exposition
from inferwatch.simulators.litellm import SimulatedLitellm, serve
from tests.support import FIXTURES, free_port, get_text, running_service, wait_until
from tests.support.litellm import MARKER

pytestmark = pytest.mark.timeout(60)
FIX = FIXTURES / "litellm"


def http_body(name: str) -> bytes:
    """Body of a captured ``.http`` file."""
    return (FIX / name).read_bytes().split(b"\n\n", 1)[1].strip()


def value(body: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    for line in body.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def own_sum(sim: SimulatedLitellm, family: str, group: str) -> float:
    """What the simulated proxy's own /metrics/ says for ``group`` (health-check series excluded)."""
    fams = parse_exposition(sim.exposition().encode())
    fam = fams[family]
    return sum(
        s.value
        for s in fam.samples
        if s.name.endswith("_total")
        and s.labels.get("requested_model") == group
        and s.labels.get("hashed_api_key") != "litellm-internal-health-check"
    )


async def test_simulator_matches_captured_shapes() -> None:
    """The simulator answers like the real proxy: statuses, redirect, auth errors, JSON shapes."""
    sim = SimulatedLitellm(MARKER)
    url, runner = await serve(sim)
    auth = {"Authorization": f"Bearer {MARKER}"}
    try:
        async with httpx.AsyncClient(base_url=url) as c:
            r = await c.get("/health/liveliness")
            assert (r.status_code, r.json()) == (200, json.loads((FIX / "health-liveliness.json").read_text()))
            r = await c.get("/health/readiness")
            assert set(r.json()) == set(json.loads((FIX / "health-readiness.json").read_text()))
            for path, capture in (("/health", "health-no-key.json"), ("/model/info", "model-info-no-key.json")):
                r = await c.get(path)
                assert (r.status_code, r.json()) == (401, json.loads((FIX / capture).read_text()))
            r = await c.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"})
            assert (r.status_code, r.json()) == (400, json.loads((FIX / "v1-models-bad-key.json").read_text()))
            for headers, capture in (
                ({}, "metrics-noauth.http"),
                ({"Authorization": "Bearer sk-wrong"}, "metrics-bad-key.http"),
            ):
                r = await c.get("/metrics/", headers=headers)
                assert (r.status_code, r.content) == (401, http_body(capture))
            r = await c.get("/metrics")
            assert r.status_code == 401  # auth is checked before the redirect
            r = await c.get("/metrics", headers=auth)
            assert (r.status_code, r.headers["location"], r.content) == (
                307,
                f"{url}/metrics/",
                http_body("metrics-noslash.http"),
            )
            r = await c.get("/metrics/", headers={"x-litellm-api-key": MARKER})
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            r = await c.get("/model/info", headers=auth)
            real = json.loads((FIX / "model-info.json").read_text())["data"][0]
            mine = r.json()["data"][0]
            assert set(mine) == set(real)
            assert set(mine["model_info"]) <= set(real["model_info"]) | {"litellm_provider"}
            r = await c.get("/health/backlog", headers=auth)
            assert set(r.json()) == set(json.loads((FIX / "health-backlog.json").read_text()))
            r = await c.get("/health", headers=auth)
            assert set(r.json()) == set(json.loads((FIX / "health-with-key.json").read_text()))
            r = await c.get("/model_group/info", headers=auth)
            real_group = json.loads((FIX / "model-group-info.json").read_text())["data"][0]
            assert set(r.json()["data"][0]) <= set(real_group)
    finally:
        await runner.cleanup()


async def test_poller_end_to_end(nats_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = SimulatedLitellm(MARKER, scenario="failing")
    sim.traffic(4)
    url, runner = await serve(sim)
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_LITELLM_URL": url,
        "INFERWATCH_LITELLM_KEY": MARKER,
        "INFERWATCH_LITELLM_NAME": "main",
        "INFERWATCH_LITELLM_INTERVAL_S": "0.4",
    }
    events: list[bytes] = []

    async def on_event(event: AnyEvent, _subject: str) -> None:
        if isinstance(event, LitellmProxySnapshot) and event.source == "main":
            events.append(msgspec.json.encode(event))

    bus = Bus(BusSettings(servers=(nats_url,)), name="litellm-observer")
    await bus.connect()
    await bus.subscribe(subject_filter("litellm"), on_event)
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("litellm-poller", env) as poller,
        ):

            async def reported() -> str | None:
                body = await get_text(agg.url + "/metrics")
                return body if value(body, "inferwatch_litellm_fallbacks_total", proxy="main") is not None else None

            body = await wait_until(reported, timeout=15, what="litellm series")
            assert value(body, "inferwatch_litellm_up", proxy="main") == 1.0
            assert value(body, "inferwatch_litellm_ready", proxy="main") == 1.0
            assert value(body, "inferwatch_litellm_metrics_mode_info", proxy="main", mode="prometheus") == 1.0
            assert value(body, "inferwatch_litellm_info", proxy="main", version="1.106.2") == 1.0
            types = dict(
                re.findall(r'inferwatch_litellm_model_info\{[^}]*model_group="([^"]+)"[^}]*type="([^"]+)"', body)
            )
            assert types == {
                "fake-chat": "llm",
                "fake-embedding": "embedding",
                "fake-rerank": "reranker",
                "failing-chat": "llm",
            }
            assert (
                value(body, "inferwatch_litellm_deployment_status", model_group="failing-chat", status="outage") == 1.0
            )
            assert value(body, "inferwatch_litellm_deployment_status", model_group="fake-chat", status="healthy") == 1.0
            # The poller's series match what the proxy's own /metrics/ says.
            assert (
                value(body, "inferwatch_litellm_fallbacks_total", model_group="failing-chat", result="success")
                == own_sum(sim, "litellm_deployment_successful_fallbacks", "failing-chat")
                == 4.0
            )
            assert value(body, "inferwatch_litellm_requests_total", model_group="fake-chat", status="2xx") == own_sum(
                sim, "litellm_proxy_total_requests_metric", "fake-chat"
            )
            assert value(body, "inferwatch_litellm_input_tokens_total", model_group="fake-chat") == own_sum(
                sim, "litellm_input_tokens_metric", "fake-chat"
            )
            assert value(body, "inferwatch_litellm_spend_usd_total", model_group="fake-chat") == pytest.approx(
                own_sum(sim, "litellm_spend_metric", "fake-chat")
            )
            assert (
                value(
                    body,
                    "inferwatch_litellm_errors_total",
                    model_group="failing-chat",
                    exception_class="Openai.InternalServerError",
                )
                == 4.0
            )
            assert value(body, "inferwatch_litellm_request_latency_seconds_count", model_group="fake-chat")
            assert "hashed_api_key" not in body
            assert "litellm_proxy_master_key" not in body
            # Live traffic shows up; slow-changing resources are cached, /health is never called (opt-in).
            sim.traffic(3)
            expected = own_sum(sim, "litellm_proxy_total_requests_metric", "fake-chat")

            async def caught_up() -> bool:
                now = await get_text(agg.url + "/metrics")
                return (
                    value(now, "inferwatch_litellm_requests_total", model_group="fake-chat", status="2xx") == expected
                )

            await wait_until(caught_up, timeout=10, what="new traffic")
            assert sim.calls.get("/metrics/", 0) >= 2  # several cycles; the model list was fetched once
            assert sim.calls.get("/metrics", 0) == 0
            assert sim.calls.get("/model/info") == 1
            assert sim.calls.get("/health", 0) == 0
            poller_metrics = await get_text(poller.url + "/metrics")
            assert 'api="litellm"' in poller_metrics
            for text in (body, poller_metrics, caplog.text, *(e.decode() for e in events)):
                assert MARKER not in text
            assert events
    finally:
        await bus.close()
        await runner.cleanup()


async def test_bad_proxies_never_stop_the_poller(
    nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sims = {
        "good": SimulatedLitellm(MARKER),
        "nokey": SimulatedLitellm(MARKER),
        "wrongkey": SimulatedLitellm(MARKER),
        "err500": SimulatedLitellm(MARKER),
        "limited": SimulatedLitellm(MARKER),
        "absent": SimulatedLitellm(MARKER, metrics="absent"),
        "gated": SimulatedLitellm(MARKER, metrics="licence_gated", version="1.70.0"),
        "old": SimulatedLitellm(MARKER, version="1.70.0"),
        "badinfo": SimulatedLitellm(MARKER),
    }
    sims["err500"].fault = "500"
    sims["limited"].fault = "429"
    sims["limited"].retry_after_s = 30
    sims["badinfo"].fault = "bad_model_info"
    for sim in sims.values():
        sim.traffic(2)
    served = {name: await serve(sim) for name, sim in sims.items()}
    keys = {"nokey": None, "wrongkey": "sk-wrong-" + MARKER[3:]}
    lines = ["litellm:", "  proxies:"]
    for name, (url, _) in served.items():
        key = keys.get(name, MARKER)
        lines.append(f"    - {{name: {name}, url: '{url}'" + (f", key: '{key}'" if key else "") + "}")
    lines.append(f"    - {{name: down, url: 'http://127.0.0.1:{free_port()}', key: '{MARKER}'}}")
    config = tmp_path / "inferwatch.yaml"
    config.write_text("\n".join(lines) + "\n")
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_CONFIG": str(config),
        "INFERWATCH_LITELLM_INTERVAL_S": "0.4",
        "INFERWATCH_LITELLM_TIMEOUT_S": "1",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("litellm-poller", env),
        ):

            async def all_reported() -> str | None:
                body = await get_text(agg.url + "/metrics")
                ok = all(value(body, "inferwatch_litellm_up", proxy=p) is not None for p in [*sims, "down"])
                polled = value(body, "inferwatch_litellm_poll_errors_total", proxy="err500", endpoint="/metrics/")
                return body if ok and polled and polled >= 2 else None

            body = await wait_until(all_reported, timeout=20, what="every proxy reported")

            def err(proxy: str, endpoint: str, error: str) -> float | None:
                return value(body, "inferwatch_litellm_poll_errors_total", proxy=proxy, endpoint=endpoint, error=error)

            assert value(body, "inferwatch_litellm_up", proxy="good") == 1.0
            assert (
                value(
                    body,
                    "inferwatch_litellm_deployment_status",
                    proxy="good",
                    model_group="fake-chat",
                    status="healthy",
                )
                == 1.0
            )
            # 401 without a key; 400 no_db_connection for a wrong key; both still up (liveliness needs no key).
            assert err("nokey", "/model/info", "http_401")
            assert err("nokey", "/metrics/", "http_401")
            assert value(body, "inferwatch_litellm_metrics_mode_info", proxy="nokey", mode="unauthorized") == 1.0
            assert value(body, "inferwatch_litellm_up", proxy="nokey") == 1.0
            assert err("wrongkey", "/model/info", "http_400")
            assert err("err500", "/model/info", "http_500")
            # 429 with Retry-After: 30 → counted once, then the poller backs off (only liveliness).
            assert err("limited", "/metrics/", "http_429") == 1.0
            assert value(body, "inferwatch_litellm_info", proxy="limited", error="rate_limited") == 1.0
            assert sims["limited"].calls["/health/liveliness"] >= 2
            # No Prometheus callback / licence-gated: said so, and models still exported.
            assert value(body, "inferwatch_litellm_metrics_mode_info", proxy="absent", mode="absent") == 1.0
            assert (
                value(body, "inferwatch_litellm_model_info", proxy="absent", model_group="fake-rerank", type="reranker")
                == 1.0
            )
            assert value(body, "inferwatch_litellm_metrics_mode_info", proxy="gated", mode="licence_gated") == 1.0
            assert value(body, "inferwatch_litellm_model_info", proxy="gated", model_group="fake-chat") == 1.0
            # Older LiteLLM names still give requests and tokens (keyed by the bare model before requested_model).
            assert value(body, "inferwatch_litellm_requests_total", proxy="old", status="success")
            assert value(body, "inferwatch_litellm_tokens_total", proxy="old")
            # Unknown fields and a row without model_info: routes still there, typed by name.
            assert (
                value(
                    body,
                    "inferwatch_litellm_model_info",
                    proxy="badinfo",
                    deployment_id="fake-embedding#1",
                    type="embedding",
                )
                == 1.0
            )
            assert value(body, "inferwatch_litellm_up", proxy="down") == 0.0
            assert err("down", "/health/liveliness", "connect_error")
            assert MARKER[3:] not in body
            assert MARKER[3:] not in caplog.text
            assert "no_db_connection" in caplog.text  # the 400's hint is logged
    finally:
        for _, runner in served.values():
            await runner.cleanup()


async def test_proxy_restart_mid_poll_keeps_cached_models(nats_url: str) -> None:
    sim = SimulatedLitellm(MARKER, scenario="failing")
    sim.traffic(5)
    url, runner = await serve(sim)
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_LITELLM_URL": url,
        "INFERWATCH_LITELLM_KEY": MARKER,
        "INFERWATCH_LITELLM_NAME": "restarting",
        "INFERWATCH_LITELLM_INTERVAL_S": "0.3",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("litellm-poller", env),
        ):

            async def metric(name: str, **labels: str) -> float | None:
                return value(await get_text(agg.url + "/metrics"), name, proxy="restarting", **labels)

            await wait_until(
                lambda: metric("inferwatch_litellm_requests_total", model_group="fake-chat", status="2xx"),
                timeout=10,
                what="first poll",
            )
            sim.fault = "restarting"  # every route answers 503 while the proxy restarts
            await wait_until(lambda: _eq(metric("inferwatch_litellm_up"), 0.0), timeout=10, what="seen down")
            body = await get_text(agg.url + "/metrics")
            assert value(
                body,
                "inferwatch_litellm_poll_errors_total",
                proxy="restarting",
                endpoint="/health/liveliness",
                error="http_503",
            )
            # the cached model list is kept (TTL 5 min) while the proxy is away
            assert value(body, "inferwatch_litellm_model_info", proxy="restarting", model_group="fake-rerank") == 1.0
            sim.restart()
            sim.fault = None
            sim.traffic(1)
            await wait_until(
                lambda: _eq(metric("inferwatch_litellm_requests_total", model_group="fake-chat", status="2xx"), 2.0),
                timeout=10,
                what="counters after restart",
            )
            assert await metric("inferwatch_litellm_up") == 1.0
    finally:
        await runner.cleanup()


async def _eq(awaitable: object, expected: float) -> bool:
    assert asyncio.iscoroutine(awaitable)
    return await awaitable == expected


async def test_opt_in_health_polled_on_its_own_interval(nats_url: str) -> None:
    sim = SimulatedLitellm(MARKER, scenario="upstream_429")  # fake-chat's upstream answers 429
    sim.traffic(2)
    url, runner = await serve(sim)
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_LITELLM_URL": url,
        "INFERWATCH_LITELLM_KEY": MARKER,
        "INFERWATCH_LITELLM_NAME": "withhealth",
        "INFERWATCH_LITELLM_INTERVAL_S": "0.3",
        "INFERWATCH_LITELLM_HEALTH_INTERVAL_S": "3600",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("litellm-poller", env),
        ):

            async def status(group: str, state: str) -> float | None:
                return value(
                    await get_text(agg.url + "/metrics"),
                    "inferwatch_litellm_deployment_status",
                    proxy="withhealth",
                    model_group=group,
                    status=state,
                )

            await wait_until(lambda: _eq(status("fake-chat", "outage"), 1.0), timeout=10, what="/health verdict")
            await wait_until(lambda: sim.calls.get("/metrics/", 0) >= 3, timeout=10, what="more cycles")
            assert sim.calls["/health"] == 1  # its own long interval, not every cycle
            assert await status("fake-embedding", "healthy") == 1.0
            body = await get_text(agg.url + "/metrics")
            assert (
                value(
                    body,
                    "inferwatch_litellm_errors_total",
                    proxy="withhealth",
                    model_group="fake-chat",
                    exception_class="Openai.RateLimitError",
                )
                == 2.0
            )
            assert (
                value(
                    body,
                    "inferwatch_litellm_deployment_remaining_requests",
                    proxy="withhealth",
                    model_group="fake-chat",
                )
                == 0.0
            )
            assert (
                value(
                    body, "inferwatch_litellm_requests_total", proxy="withhealth", model_group="fake-chat", status="4xx"
                )
                == 2.0
            )
    finally:
        await runner.cleanup()

"""Secrets from settings never reach logs, events or metrics (services run with marker secrets)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.aggregator.__main__ import main as aggregator_main
from services.aggregator.__main__ import routes as aggregator_routes
from services.vllm_scraper.__main__ import main as scraper_main
from shared.bus import Bus, BusSettings
from simulators.vllm import SimulatedVllm, VllmGeneration, serve
from tests.conftest import free_port, get_text, running_service, wait_until

MARKERS = {
    "INFERWATCH_VLLM_API_KEY": "sk-MARKER-vllm-4f1c9e",
    "NATS_PASSWORD": "MARKER-nats-pw-77ab",
    "NATS_TOKEN": "MARKER-nats-token-9d2",
}


async def test_marker_secrets_appear_nowhere(nats_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    sim = SimulatedVllm(model="m", root="org/m", generation=VllmGeneration.V1, version="0.33.0")
    [(good_url, runner)] = await serve([sim], api_key=MARKERS["INFERWATCH_VLLM_API_KEY"])
    wrong = SimulatedVllm(model="w", root="org/w", generation=VllmGeneration.V1, version="0.33.0")
    [(wrong_key_url, runner2)] = await serve([wrong], api_key="some-other-key-xyz")
    dead_url = f"http://127.0.0.1:{free_port()}"
    events: list[bytes] = []
    listener = Bus(BusSettings(servers=(nats_url,)), name="secret-listener")
    await listener.connect()

    async def collect(msg: object) -> None:
        events.append(msg.data)  # type: ignore[attr-defined]

    await listener.subscribe_raw("inferwatch.v1.>", collect)
    env = {"NATS_URL": nats_url, "NATS_USER": "svc", **MARKERS,
           "INFERWATCH_VLLM_TARGETS": f"{good_url},{wrong_key_url},{dead_url}", "INFERWATCH_VLLM_INTERVAL_S": "0.5",
           "INFERWATCH_LOG_LEVEL": "debug"}
    try:
        async with running_service("aggregator", aggregator_main, env, routes=aggregator_routes) as agg, \
                running_service("vllm-scraper", scraper_main, env) as scraper:

            async def models_seen() -> bool:
                return 'models="m"' in await get_text(agg.url + "/metrics")

            await wait_until(models_seen, timeout=10, what="the keyed /v1/models read")  # proves the key is used

            async def upstream_outcomes_seen() -> bool:
                body = await get_text(agg.url + "/metrics")
                return all(f'outcome="{o}"' in body for o in ("ok", "http_401", "connect_error"))

            # the scraper's upstream call stats reach the aggregator, failures labelled by outcome
            await wait_until(upstream_outcomes_seen, timeout=10, what="inferwatch_upstream_calls_total by outcome")
            await asyncio.sleep(1.2)  # a few more cycles of failures (401, refused) to log
            bodies = [await get_text(agg.url + "/metrics"), await get_text(scraper.url + "/metrics")]
            async with httpx.AsyncClient() as client:
                bodies.append((await client.get(scraper.url + "/readyz")).text)
    finally:
        await listener.close()
        await runner.cleanup()
        await runner2.cleanup()
    out, err = capfd.readouterr()
    assert events, "no events were captured"
    assert "vllm-scraper" in err  # the services did log
    for name, marker in MARKERS.items():
        for i, data in enumerate(events):
            assert marker.encode() not in data, f"{name} in event {i}"
        for body in bodies:
            assert marker not in body, name
        assert marker not in out, f"{name} in stdout"
        assert marker not in err, f"{name} in logs"

"""examples/faststream_consumer.py against a real nats-server: typed events in, its AsyncAPI document out."""

from __future__ import annotations

import json
import time

import httpx

from examples.faststream_consumer import asyncapi_document, build_app, serve_asyncapi
from inferwatch.contracts import AnyEvent
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.vllm import VllmInstanceSnapshot, VllmModelLoaded
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import EmbeddedNats
from tests.support import free_port, wait_until
from tests.support.aggregator import vllm_snapshot


async def test_the_faststream_example_gets_typed_alerts_and_vllm_events(private_nats: EmbeddedNats) -> None:
    received: list[tuple[str, AnyEvent]] = []
    _, broker = build_app(private_nats.url, lambda subject, event: received.append((subject, event)))
    bus = Bus(BusSettings(servers=(private_nats.url,)), name="faststream-test")
    await bus.connect()
    now = time.time()
    try:
        async with broker:
            await broker.start()
            # the subscriptions reach the server before anything is published on the other connection
            await broker.config.connection_state.connection.flush()
            alert = Alert(
                source="http://10.0.0.1:8000",
                observed_at=now,
                collector="aggregator@test",
                name="VllmTargetDown",
                state="firing",
                severity="critical",
                annotations={"summary": "vLLM target http://10.0.0.1:8000 is down"},
            )
            loaded = VllmModelLoaded(
                source="http://10.0.0.1:8000",
                observed_at=now,
                collector="vllm-scraper@test",
                models=["qwen3-8b"],
                load_duration_s=42.0,
            )
            # first, on the alert subscription: not an inferwatch event at all (handled before the alert, in order)
            await bus.publish_raw("inferwatch.v1.alert.junk.x", b"\xc1 not msgpack")
            await bus.publish(alert)  # msgpack, as every service publishes by default
            await bus.publish(vllm_snapshot(observed_at=now), encoding="json")  # JSON is read too
            await bus.publish(loaded)
            # not subscribed: a heartbeat
            await bus.publish(
                Heartbeat(
                    source="x",
                    observed_at=now,
                    collector="x",
                    interval_s=5,
                    service="x",
                    version="0",
                    started_at=now,
                    ready=True,
                )
            )
            await wait_until(lambda: len(received) >= 3, timeout=30, what="three events through FastStream")
    finally:
        await bus.close()
    by_type = {type(event): (subject, event) for subject, event in received}
    assert set(by_type) == {Alert, VllmInstanceSnapshot, VllmModelLoaded}
    subject, got_alert = by_type[Alert]
    assert subject.startswith("inferwatch.v1.alert.VllmTargetDown.")
    assert got_alert == alert
    subject, snapshot = by_type[VllmInstanceSnapshot]
    assert subject.startswith("inferwatch.v2.vllm.instance.")
    assert isinstance(snapshot, VllmInstanceSnapshot)
    assert snapshot.engines[0].model_name == "qwen3-8b"
    assert by_type[VllmModelLoaded][1] == loaded
    assert len(received) == 3  # the undecodable message, handled before the alert, reached no handler


async def test_the_faststream_example_serves_its_asyncapi_document() -> None:
    app, _ = build_app("nats://127.0.0.1:4222")
    port = free_port()
    runner = await serve_asyncapi(app, port)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/asyncapi.json")
    finally:
        await runner.cleanup()
    assert response.status_code == 200
    doc = response.json()
    assert doc == json.loads(json.dumps(asyncapi_document(app)))
    assert doc["asyncapi"].startswith("3.")
    assert doc["defaultContentType"] == "application/msgpack"
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {"inferwatch.v1.alert.>", "inferwatch.v2.vllm.instance.>", "inferwatch.v1.vllm.loaded.>"}
    # the payloads are the contracts' schemas (msgspec's), not an empty placeholder
    schemas = json.dumps(doc["components"]["schemas"])
    assert '"engines"' in schemas
    assert '"annotations"' in schemas

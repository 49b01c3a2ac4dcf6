"""A FastStream app that consumes inferwatch's events: alerts and vLLM snapshots, as typed contract objects.

Other tools subscribe to our subjects; this is how a FastStream user does it. Events arrive as msgpack (or JSON)
and are decoded by inferwatch's own contracts (``inferwatch.contracts.decode``, msgspec), not by FastStream's
JSON + pydantic path: the app passes a custom decoder to each subscriber
and binds it with FastStream's msgspec serializer, so a handler gets the frozen msgspec Struct the publisher sent
(``Alert``, ``VllmInstanceSnapshot``, ...).

Run it (needs ``pip install 'faststream[nats]'`` next to inferwatch)::

    NATS_URL=nats://127.0.0.1:4222 python examples/faststream_consumer.py

It prints one line per event, and serves its AsyncAPI document on http://127.0.0.1:8090/asyncapi.json
(``EXAMPLE_HTTP_PORT`` to move it). The subjects come from the contracts, so a new subject version is picked
up without editing this file: alerts on ``inferwatch.v1.alert.>``, vLLM instance snapshots on their current
version (``inferwatch.v2.vllm.instance.>``) and model-loaded events (``inferwatch.v1.vllm.loaded.>``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web
from fast_depends.msgspec import MsgSpecSerializer
from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from faststream.specification import AsyncAPI
from pydantic import PlainValidator, WithJsonSchema

from inferwatch import __version__
from inferwatch.contracts import AnyEvent, decode
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.base import Event
from inferwatch.contracts.subjects import PREFIX, domain_kind, version_token
from inferwatch.contracts.vllm import VllmInstanceSnapshot, VllmModelLoaded


def subjects_of(event_type: type[Event]) -> str:
    """Every subject of an event type's current version: ``inferwatch.v<N>.<domain>.<kind>.>`` (alerts: every
    rule, ``inferwatch.v1.alert.>``)."""
    domain, kind = domain_kind(event_type)
    if event_type.SUBJECT_KIND_FIELD:
        return f"{PREFIX}.{version_token(event_type)}.{domain}.>"
    return f"{PREFIX}.{version_token(event_type)}.{domain}.{kind}.>"


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` into ``defs`` replaced by the definition (the contracts have no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def contract(event_type: type[Event]) -> Any:
    """A handler annotation for an inferwatch event type.

    FastStream builds its AsyncAPI payload schemas with pydantic, which does not know msgspec Structs; this
    hands pydantic the event's JSON Schema as msgspec writes it (self-contained) and no validation of its own.
    At run time msgspec binds the decoded event to the annotation as it is.
    """
    schema = msgspec.json.schema(event_type)
    defs = schema.pop("$defs", {})
    return Annotated[event_type, PlainValidator(lambda value: value), WithJsonSchema(_inline(schema, defs))]


AlertEvent = contract(Alert)
VllmInstanceEvent = contract(VllmInstanceSnapshot)
VllmLoadedEvent = contract(VllmModelLoaded)


async def contract_decoder(msg: NatsMessage) -> AnyEvent:
    """FastStream's custom decoder: the message body (msgpack or JSON) as the inferwatch event it encodes."""
    return decode(msg.body)


def build_app(
    servers: str, on_event: Callable[[str, AnyEvent], None] = lambda subject, event: None
) -> tuple[FastStream, NatsBroker]:
    """The FastStream app: three typed subscribers; ``on_event(subject, event)`` sees every event handled."""
    # msgspec, not pydantic, binds the decoded event to the handler's annotation (and gives the AsyncAPI schemas).
    broker = NatsBroker(servers.split(","), serializer=MsgSpecSerializer())

    @broker.subscriber(subjects_of(Alert), decoder=contract_decoder, title="alerts")
    async def on_alert(event: AlertEvent, msg: NatsMessage) -> None:
        """An alert fired or resolved."""
        print(f"alert {event.name} {event.state} {event.annotations.get('summary', '')}", flush=True)
        on_event(msg.raw_message.subject, event)

    @broker.subscriber(subjects_of(VllmInstanceSnapshot), decoder=contract_decoder, title="vllm-instances")
    async def on_instance(event: VllmInstanceEvent, msg: NatsMessage) -> None:
        """One scrape of one vLLM instance."""
        running = sum(e.requests_running or 0 for e in event.engines)
        print(f"vllm {event.source} up={event.up} status={event.status} running={running:g}", flush=True)
        on_event(msg.raw_message.subject, event)

    @broker.subscriber(subjects_of(VllmModelLoaded), decoder=contract_decoder, title="vllm-loaded")
    async def on_loaded(event: VllmLoadedEvent, msg: NatsMessage) -> None:
        """A vLLM instance finished loading its model."""
        print(f"vllm {event.source} loaded", flush=True)
        on_event(msg.raw_message.subject, event)

    spec = AsyncAPI(broker, title="inferwatch FastStream consumer", version=__version__)
    return FastStream(broker, specification=spec), broker


def asyncapi_document(app: FastStream) -> dict[str, Any]:
    """The app's AsyncAPI 3.0 document as FastStream generates it, with the content type our publishers use
    (msgpack by default; FastStream assumes JSON)."""
    assert app.schema is not None
    document: dict[str, Any] = app.schema.to_specification().to_jsonable()
    document["defaultContentType"] = "application/msgpack"
    return document


async def serve_asyncapi(app: FastStream, port: int) -> web.AppRunner:
    """Serve ``GET /asyncapi.json`` on ``port`` (aiohttp, which inferwatch already depends on)."""
    body = json.dumps(asyncapi_document(app), indent=2)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    http = web.Application()
    http.add_routes([web.get("/asyncapi.json", handler)])
    runner = web.AppRunner(http, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def main() -> None:
    """Consume until Ctrl-C / SIGTERM, serving the AsyncAPI document meanwhile."""
    app, _ = build_app(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    port = int(os.environ.get("EXAMPLE_HTTP_PORT", "8090"))
    runner = await serve_asyncapi(app, port)
    print(f"AsyncAPI document on http://127.0.0.1:{port}/asyncapi.json", file=sys.stderr, flush=True)
    try:
        await app.run()  # returns on SIGINT / SIGTERM
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

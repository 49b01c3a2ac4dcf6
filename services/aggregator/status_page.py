"""The aggregator's status page: ``/`` (one self-contained HTML/JS file) and its JSON feed ``/api/status``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from inferwatch.contracts.catalog import ModelCatalogSnapshot
from inferwatch.contracts.supervisor import SupervisorSnapshot
from inferwatch.services.aggregator.economics import model_economics

PAGE = Path(__file__).parent / "static" / "status.html"


def status_payload(aggregator: Any) -> dict[str, Any]:
    """Sources and their state, firing alerts, catalog entries, each model's unit economics (``label, value``
    lines by model name), the SLOs per model (error budget left, burn rate per window) and ``inferwatch up``'s
    processes."""
    table = aggregator.table
    now = time.time()
    sources: list[dict[str, Any]] = []
    models: dict[str, dict[str, Any]] = {}
    children: list[dict[str, Any]] = []
    for entry in list(table.sources.values()):
        event = entry.event
        up = bool(getattr(event, "up", True)) and not getattr(event, "error", "")
        sources.append(
            {
                "domain": entry.domain,
                "kind": entry.kind,
                "source": event.source,
                "state": "up" if up else "degraded",
                "error": str(getattr(event, "error", "")),
                "observed_at": event.observed_at,
            }
        )
        if isinstance(event, ModelCatalogSnapshot):
            for model in event.entries:
                models[model.name] = msgspec.to_builtins(model)
        elif isinstance(event, SupervisorSnapshot):
            children.extend({"supervisor": event.source, **msgspec.to_builtins(c)} for c in event.children)
    for tomb in list(table.tombstones.values()):
        sources.append(
            {
                "domain": tomb.domain,
                "kind": tomb.kind,
                "source": tomb.source,
                "state": "down",
                "error": "no snapshot for 3 intervals",
                "observed_at": tomb.last_seen,
            }
        )
    alerts: list[Any] = []
    engine = getattr(aggregator, "alerts", None)
    if engine is not None and hasattr(engine, "firing"):
        alerts = [msgspec.to_builtins(a) for a in engine.firing()]
    sources.sort(key=lambda s: (s["domain"], s["source"]))
    slos = getattr(aggregator, "slos", None)
    return {
        "generated_at": now,
        "sources": sources,
        "alerts": alerts,
        "models": sorted(models.values(), key=lambda m: m["name"]),
        "economics": model_economics(getattr(aggregator, "economics", None)),
        "processes": children,
        "slos": slos.status(now) if slos is not None else [],
    }


def status_routes(aggregator: Any) -> list[web.RouteDef]:
    """``GET /`` (the page) and ``GET /api/status`` (its data), for the aggregator's HTTP server."""
    page = PAGE.read_bytes()

    async def index(_: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"})

    async def api(_: web.Request) -> web.Response:
        return web.json_response(status_payload(aggregator), headers={"Cache-Control": "no-store"})

    return [web.get("/", index), web.get("/api/status", api)]

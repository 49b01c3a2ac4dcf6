"""The aggregator's status page: ``/`` (one self-contained HTML/JS file) and its JSON feed ``/api/status``.

What a user came for comes first: the models (availability, type, endpoint, p95 latency and request rate now;
size, quantization and Hugging Face link from the catalog; the unit economics and each SLO's error budget), then
the GPUs per host with the container and model
on each, then the LiteLLM proxies and Langfuse projects. inferwatch's own parts (heartbeats, upstream-call
records, ``inferwatch up``'s processes) come last, in a section the page shows collapsed. ``inferwatch status``
prints the same payload in a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from inferwatch.contracts import domain_kind
from inferwatch.contracts.base import Histogram
from inferwatch.contracts.catalog import CatalogEntry, ModelCatalogSnapshot
from inferwatch.contracts.gpu import GpuHostSnapshot, GpuReading
from inferwatch.contracts.langfuse import LangfuseProjectSnapshot
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.supervisor import SupervisorSnapshot
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.services.aggregator.economics import model_economics
from inferwatch.services.aggregator.rule_engine import histogram_growth, histogram_quantile

PAGE = Path(__file__).parent / "static" / "status.html"

# Domains whose sources are inferwatch reporting on itself, not a system the user runs.
OWN_DOMAINS = frozenset({"heartbeat", "upstream", "supervisor", "catalog"})
LATENCY_QUANTILE = 0.95
EXPIRED = "no snapshot for 3 intervals"


@dataclass(frozen=True)
class ModelLive:
    """What one model is doing now, summed over the vLLM instances serving it.

    Attributes:
        request_rate: finished requests per second between the last two snapshots (None until there are two).
        p95_latency_s: end-to-end latency p95 over that interval, or over the instances' lifetime while there
            is only one snapshot; None without a latency histogram.
        instances: vLLM instances serving it.
    """

    request_rate: float | None = None
    p95_latency_s: float | None = None
    instances: int = 0


@dataclass
class _Reading:
    observed_at: float
    requests: float
    latency: Histogram | None


@dataclass
class LiveModelStats:
    """Remembers the previous snapshot of every (vLLM source, model) so the page can show rates, not totals."""

    _last: dict[tuple[str, str], tuple[_Reading | None, _Reading]] = field(default_factory=dict)

    def update(self, snapshots: Iterable[VllmInstanceSnapshot]) -> dict[str, ModelLive]:
        """Fold in the current snapshots; each model's `ModelLive`."""
        rates: dict[str, float] = {}
        windows: dict[str, list[Histogram]] = {}
        instances: dict[str, int] = {}
        seen: set[tuple[str, str]] = set()
        for snap in snapshots:
            for model, reading in _readings(snap).items():
                key = (snap.source, model)
                seen.add(key)
                prev, cur = self._last.get(key, (None, reading))
                if reading.observed_at > cur.observed_at:
                    prev, cur = cur, reading
                if prev is not None and cur.requests < prev.requests:
                    prev = None  # a restarted engine: its counters began again
                self._last[key] = (prev, cur)
                instances[model] = instances.get(model, 0) + 1
                if prev is not None and cur.observed_at > prev.observed_at:
                    rates[model] = rates.get(model, 0.0) + (cur.requests - prev.requests) / (
                        cur.observed_at - prev.observed_at
                    )
                window = _latency_since(prev, cur)
                if window is not None:
                    windows.setdefault(model, []).append(window)
        for key in set(self._last) - seen:
            del self._last[key]  # the source expired or stopped serving the model
        return {
            model: ModelLive(
                request_rate=rates.get(model),
                p95_latency_s=histogram_quantile(LATENCY_QUANTILE, sum_histograms(windows.get(model, []))),
                instances=count,
            )
            for model, count in instances.items()
        }


def _readings(snap: VllmInstanceSnapshot) -> dict[str, _Reading]:
    """Finished requests and the latency histogram per model, summed over the snapshot's engines."""
    out: dict[str, _Reading] = {}
    if not snap.up:
        return out
    for engine in snap.engines:
        requests = sum(engine.request_success_total.values())
        latency = engine.e2e_request_latency_seconds
        if engine.model_name in out:
            prior = out[engine.model_name]
            prior.requests += requests
            prior.latency = sum_histograms([h for h in (prior.latency, latency) if h is not None])
        else:
            out[engine.model_name] = _Reading(snap.observed_at, requests, latency)
    return out


def sum_histograms(histograms: list[Histogram]) -> Histogram | None:
    """Bucket-wise sum of histograms with the bounds of the first (engines of one vLLM version); None for none."""
    if not histograms:
        return None
    first = histograms[0]
    same = [h for h in histograms if [b for b, _ in h.buckets] == [b for b, _ in first.buckets]]
    buckets = [(bound, sum(h.buckets[i][1] for h in same)) for i, (bound, _) in enumerate(first.buckets)]
    return Histogram(buckets=buckets, sum=sum(h.sum for h in same), count=sum(h.count for h in same))


def _latency_since(prev: _Reading | None, cur: _Reading) -> Histogram | None:
    """Latency observations since ``prev`` (all of ``cur``'s without a comparable previous reading)."""
    if cur.latency is None or prev is None or prev.latency is None:
        return cur.latency
    return histogram_growth(prev.latency, cur.latency) or cur.latency


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def model_figures(entry: CatalogEntry, live: ModelLive | None) -> list[tuple[str, str]]:
    """The ``(label, value)`` rows of a model's card, in order: the one place a model figure is added.

    Live figures first (p95 latency, request rate), then what the catalog knows (size, quantization, context).
    A figure that is not known is left out rather than shown as zero.
    """
    rows: list[tuple[str, str]] = []
    if live is not None and live.p95_latency_s is not None:
        rows.append(("p95 latency", _seconds(live.p95_latency_s)))
    if live is not None and live.request_rate is not None:
        rows.append(("requests", f"{live.request_rate:.2f}/s"))
    if entry.parameter_count:
        rows.append(("size", f"{entry.parameter_count / 1e9:.1f}B parameters"))
    if entry.quantization:
        rows.append(("quantization", entry.quantization))
    if entry.max_context:
        rows.append(("context", f"{entry.max_context:,} tokens"))
    return rows


def _state(event: Any) -> tuple[str, str]:
    """(state, reason) of a snapshot: ``up`` or ``degraded`` with its error."""
    error = str(getattr(event, "error", "") or "")
    up = bool(getattr(event, "up", True)) and not error
    return ("up" if up else "degraded"), error


def _gpu(reading: GpuReading, containers: dict[str, tuple[str, list[str]]]) -> dict[str, Any]:
    """One GPU's row: readings and the containers (and their models) with processes on it."""
    on_it: list[str] = []
    models: list[str] = []
    for process in reading.processes:
        cid = process.container_id
        match = next((v for k, v in containers.items() if cid and (k.startswith(cid) or cid.startswith(k))), None)
        name, served = match if match else (cid[:12], [])
        if name and name not in on_it:
            on_it.append(name)
        models.extend(m for m in served if m not in models)
    return {
        "index": reading.index,
        "name": reading.name,
        "utilization_ratio": reading.utilization_ratio,
        "memory_used_bytes": reading.memory_used_bytes,
        "memory_total_bytes": reading.memory_total_bytes,
        "temperature_celsius": reading.temperature_celsius,
        "containers": on_it,
        "models": models,
        "error": reading.error,
    }


def status_payload(aggregator: Any, live_stats: LiveModelStats | None = None) -> dict[str, Any]:
    """Everything the page (and ``inferwatch status``) shows, models first; see the module's docstring.

    ``live_stats`` carries the previous snapshots between calls (the routes keep one); without it, rates are
    unknown and latency is over each instance's lifetime.
    """
    table = aggregator.table
    sources: list[dict[str, Any]] = []
    catalog: dict[str, CatalogEntry] = {}
    vllm: list[VllmInstanceSnapshot] = []
    hosts: list[GpuHostSnapshot] = []
    proxies: list[dict[str, Any]] = []
    projects: list[dict[str, Any]] = []
    children: list[dict[str, Any]] = []
    for entry in list(table.sources.values()):
        event = entry.event
        state, error = _state(event)
        row = {"domain": entry.domain, "kind": entry.kind, "source": event.source, "state": state, "error": error}
        sources.append({**row, "observed_at": event.observed_at, "own": entry.domain in OWN_DOMAINS})
        if isinstance(event, ModelCatalogSnapshot):
            catalog.update((model.name, model) for model in event.entries)
        elif isinstance(event, SupervisorSnapshot):
            children.extend({"supervisor": event.source, **msgspec.to_builtins(c)} for c in event.children)
        elif isinstance(event, VllmInstanceSnapshot):
            vllm.append(event)
        elif isinstance(event, GpuHostSnapshot):
            hosts.append(event)
        elif isinstance(event, LitellmProxySnapshot):
            proxies.append({**row, "version": event.version, "routes": len(event.routes), "url": event.base_url})
        elif isinstance(event, LangfuseProjectSnapshot):
            projects.append({**row, "version": event.server_version, "mode": event.mode})
    down_hosts: list[dict[str, Any]] = []
    for tomb in list(table.tombstones.values()):
        row = {"domain": tomb.domain, "kind": tomb.kind, "source": tomb.source, "state": "down", "error": EXPIRED}
        sources.append({**row, "observed_at": tomb.last_seen, "own": tomb.domain in OWN_DOMAINS})
        # a system that stopped reporting stays in its section, shown down, until its tombstone goes
        kind = (tomb.domain, tomb.kind)
        if kind == domain_kind(LitellmProxySnapshot):
            proxies.append({**row, "version": "", "routes": 0, "url": ""})
        elif kind == domain_kind(LangfuseProjectSnapshot):
            projects.append({**row, "version": "", "mode": ""})
        elif kind == domain_kind(GpuHostSnapshot):
            down_hosts.append(
                {"host": tomb.source, "state": "down", "error": EXPIRED, "driver_version": "", "gpus": []}
            )
    live = (live_stats or LiveModelStats()).update(vllm)
    containers = {s.container_id: (s.container_name, [m.id for m in s.models]) for s in vllm if s.container_id}
    alerts: list[Any] = []
    engine = getattr(aggregator, "alerts", None)
    if engine is not None and hasattr(engine, "firing"):
        alerts = [msgspec.to_builtins(a) for a in engine.firing()]
    sources.sort(key=lambda s: (s["own"], s["domain"], s["source"]))
    economics = model_economics(getattr(aggregator, "economics", None))
    slos = getattr(aggregator, "slos", None)
    now = time.time()
    return {
        "generated_at": now,
        "models": [
            {**msgspec.to_builtins(m), "figures": model_figures(m, live.get(m.name)) + economics.get(m.name, [])}
            for m in sorted(catalog.values(), key=lambda m: (not m.available, m.name))
        ],
        "slos": slos.status(now) if slos is not None else [],
        "gpu_hosts": sorted(
            [
                {
                    "host": h.source,
                    "state": _state(h)[0],
                    "error": h.error,
                    "driver_version": h.driver_version,
                    "gpus": [_gpu(g, containers) for g in h.gpus],
                }
                for h in hosts
            ]
            + down_hosts,
            key=lambda h: str(h["host"]),
        ),
        "proxies": sorted(proxies, key=lambda p: p["source"]),
        "projects": sorted(projects, key=lambda p: p["source"]),
        "alerts": alerts,
        "sources": sources,
        "processes": children,
    }


def status_routes(aggregator: Any) -> list[web.RouteDef]:
    """``GET /`` (the page) and ``GET /api/status`` (its data), for the aggregator's HTTP server."""
    page = PAGE.read_bytes()
    live_stats = LiveModelStats()

    async def index(_: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"})

    async def api(_: web.Request) -> web.Response:
        with aggregator.lock:  # ingest may write the table from its own thread
            payload = status_payload(aggregator, live_stats)
        return web.json_response(payload, headers={"Cache-Control": "no-store"})

    return [web.get("/", index), web.get("/api/status", api)]

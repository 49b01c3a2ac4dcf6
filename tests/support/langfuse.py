"""The langfuse-ingester harness the API, PostgreSQL and ClickHouse tests share: a clock, a ledger store,
a service context, and the totals a project snapshot must agree on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from inferwatch.contracts.langfuse import LangfuseProjectSnapshot
from inferwatch.services.langfuse_ingester.core import Ledger
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.service import ServiceContext
from inferwatch.shared.settings import Env

T0 = 1_787_000_000.0  # a fixed epoch (2026-08)


class MemoryStore:
    """A ledger store in memory (the KV store is exercised by the exactness test)."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    async def load(self, label: str) -> Ledger | None:
        doc = self.saved.get(label)
        return Ledger.from_json(doc) if doc else None

    async def save(self, label: str, ledger: Ledger) -> None:
        self.saved[label] = ledger.to_json()


class Clock:
    """A settable clock: ``now`` is what calling it returns."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_ctx() -> ServiceContext:
    """A langfuse-ingester service context with an unconnected bus and a private registry."""
    return ServiceContext(
        name="langfuse-ingester",
        env=Env({}),
        bus=Bus(BusSettings(), name="t"),
        registry=CollectorRegistry(),
        stop=asyncio.Event(),
        instance="test",
    )


def sums(snap: LangfuseProjectSnapshot) -> dict[str, float]:
    """A project snapshot's totals over every bucket, by quantity (the figures the sources must agree on)."""
    out = {
        "traces": 0.0,
        "observations": 0.0,
        "errors": 0.0,
        "input_tokens": 0.0,
        "output_tokens": 0.0,
        "total_tokens": 0.0,
        "cost_usd": 0.0,
    }
    for u in snap.usage:
        out["traces"] += u.traces_total
        out["observations"] += u.observations_total
        out["errors"] += u.error_observations_total
        out["input_tokens"] += u.input_tokens_total
        out["output_tokens"] += u.output_tokens_total
        out["total_tokens"] += u.total_tokens_total
        out["cost_usd"] += u.cost_usd_total
    out["scores_counted"] = sum(s.count for s in snap.scores)
    out["score_nulls"] = sum(s.nulls for s in snap.scores)
    # TEXT scores (the simulator's only unusable rows): a bad row where the server sends them, a
    # server-dropped row where /v2/scores leaves them out of ``data`` but counts them in ``totalItems``
    out["score_unknown_type"] = snap.bad_rows_total.get("score_unknown_type", 0.0) + snap.bad_rows_total.get(
        "server_dropped_rows", 0.0
    )
    return out


def kind_sums(snap: LangfuseProjectSnapshot) -> dict[str, dict[str, float]]:
    """A snapshot's counts by observation type and level, by trace name and of traces in sessions, in the shape of
    the simulator's ``SimulatedLangfuse.kinds``."""
    return {
        "type": dict(snap.observations_by_type_total),
        "level": dict(snap.observations_by_level_total),
        "trace_name": dict(snap.traces_by_name_total),
        "session_traces": {"": snap.session_traces_total} if snap.session_traces_total else {},
    }


def assert_equal_totals(got: dict[str, float], want: dict[str, float], *, skip: tuple[str, ...] = ()) -> None:
    """Every total in ``want`` (except ``skip``) equals the one in ``got``."""
    for name, value in want.items():
        if name in skip:
            continue
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name

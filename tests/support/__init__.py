"""Test helpers in one place: repository paths, free ports, polling, HTTP gets, services run in-process.

Test modules import these (``from tests.support import ...``); conftest files hold only fixtures and hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from inferwatch.services import spec
from inferwatch.shared.ports import free_port
from inferwatch.shared.service import ServiceApp, run_service
from inferwatch.shared.settings import Env

__all__ = [
    "FIXTURES",
    "ROOT",
    "RunningService",
    "free_port",
    "get_text",
    "require_tool",
    "running_service",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""
FIXTURES = ROOT / "tests" / "fixtures"
"""Recorded upstream responses and reference files (tests/fixtures)."""


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
        await wait_until(lambda: answers(svc.url + "/healthz"), timeout=ready_timeout, what=f"{name} /healthz")
        if wait_ready:
            await wait_until(lambda: answers(svc.url + "/readyz"), timeout=ready_timeout, what=f"{name} ready")
        yield svc
    finally:
        await svc.stop()


async def answers(url: str) -> bool:
    """Whether ``url`` answers 200 within a second."""
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


def service_process(
    name: str, env: Mapping[str, str], *, stderr: int | IO[bytes] = subprocess.DEVNULL
) -> tuple[subprocess.Popen[bytes], str]:
    """``inferwatch run NAME`` as a process of its own on a free port (the registry's port variable): it, and its URL.

    ``env`` is laid over this process's environment; stdout is discarded.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "run", name],
        cwd=ROOT,
        env={**os.environ, **env, spec(name).port_variable: str(port)},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout_s: float = 10.0) -> None:
    """SIGTERM every process still running, wait for each, SIGKILL what does not stop in ``timeout_s``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

"""The Dockerfile on a real Docker Engine: built offline on a locally made Debian base, run as the compose stack
runs it (non-root, read-only root filesystem), answering ``/readyz``."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support import free_port
from tests.support.docker_engine import DockerEngine, build_inferwatch_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_image_builds_offline_and_runs_the_aggregator_read_only(docker_engine: DockerEngine, nats_url: str) -> None:
    engine = docker_engine
    started = time.monotonic()
    image = build_inferwatch_image(engine)
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(f"\ninferwatch image: {size / 1e6:.0f} MB, made in {time.monotonic() - started:.0f} s")
    port = free_port()
    cid = engine.docker(
        *("run", "-d", "--network", "host", "--read-only", "--security-opt", "no-new-privileges:true"),
        *("-e", f"NATS_URL={nats_url}", "-e", f"INFERWATCH_AGGREGATOR_HTTP_PORT={port}"),
        *("-e", "INFERWATCH_AGGREGATOR_HTTP_HOST=127.0.0.1", image),
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        assert status == 200, engine.docker("logs", cid, check=False).stderr[-2000:]
        user, read_only = engine.docker(
            "inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", cid
        ).stdout.split()
        assert (user, read_only) == ("10001", "true")
        uid = engine.docker("exec", cid, "python3", "-c", "import os; print(os.getuid())").stdout.strip()
        assert uid == "10001"
        assert engine.docker("exec", cid, "python3", "-c", "open('/opt/x', 'w')", check=False).returncode != 0
        assert engine.docker("exec", cid, "inferwatch", "run", "--help", check=False).returncode == 0
    finally:
        engine.docker("rm", "-f", cid, check=False)

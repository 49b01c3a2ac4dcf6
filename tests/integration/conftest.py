"""Fixtures of the integration tier alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inferwatch.shared.natsserver import NatsCluster, find_binary
from tests.support.docker_engine import DockerEngine, make_busybox_images, running_engine


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    """A three-node JetStream cluster of the test's own (nodes may be killed and restarted)."""
    if not find_binary():
        pytest.skip("nats-server binary not installed")
    with NatsCluster(3) as c:
        yield c


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private, real dockerd for the session (tests/support/docker_engine.py), with the busybox images made;
    every container removed and the daemon stopped by its pidfile's PID afterwards."""
    with running_engine() as engine:
        make_busybox_images(engine)
        yield engine

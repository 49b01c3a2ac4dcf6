"""Fixtures of the integration tier alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inferwatch.shared.natsserver import NatsCluster, find_binary


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    """A three-node JetStream cluster of the test's own (nodes may be killed and restarted)."""
    if not find_binary():
        pytest.skip("nats-server binary not installed")
    with NatsCluster(3) as c:
        yield c

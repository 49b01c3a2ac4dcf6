"""JetStream key-value buckets, opened the same way by every service that keeps state in one.

A bucket is replicated on a cluster: ``INFERWATCH_KV_REPLICAS`` (``BusSettings.kv_replicas``) sets the
replica count of buckets a service creates; ``0`` (the default) means 3 when the client knows of three
or more servers in the cluster (configured URLs and the ones the cluster gossips), else 1. A bucket that
already exists is opened as it is.
"""

from __future__ import annotations

from typing import Any

from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from inferwatch.shared.bus import Bus


def known_servers(nc: Any) -> int:
    """How many distinct servers the client knows of: its configured URLs and the cluster's gossiped ones."""
    return len({(url.hostname, url.port) for url in nc.servers})  # urllib ParseResults


def replicas_for(bus: Bus) -> int:
    """The replica count for a new bucket on ``bus``'s cluster (see the module docstring)."""
    if bus.settings.kv_replicas > 0:
        return bus.settings.kv_replicas
    return 3 if known_servers(bus.client) >= 3 else 1


async def open_bucket(bus: Bus, bucket: str, *, ttl_s: float | None = None) -> KeyValue:
    """Open ``bucket``, creating it (one value per key, ``ttl_s``, replicated) when it does not exist.

    Raises:
        Exception: whatever nats-py raises when JetStream is off, unreachable or refuses (callers decide
            whether to carry on without the bucket).
    """
    js = bus.client.jetstream()
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, replicas=replicas_for(bus))
        return await js.create_key_value(config)

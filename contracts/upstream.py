"""How a collector's calls to its upstream APIs fare, so one place shows every upstream's health."""

from __future__ import annotations

import msgspec

from inferwatch.contracts.base import Snapshot


class EndpointCalls(msgspec.Struct, frozen=True, kw_only=True):
    """Cumulative call counts for one (api, endpoint) pair.

    Attributes:
        api: upstream kind (``vllm``, ``litellm``, ``langfuse``, ``huggingface``…).
        endpoint: bounded route template (``/v1/models``), never a raw URL.
        outcomes: cumulative calls by outcome (``ok``, ``timeout``, ``http_5xx``, ``circuit_open``…).
        duration_sum_s: cumulative seconds spent in calls.
    """

    api: str
    endpoint: str
    outcomes: dict[str, float]
    duration_sum_s: float = 0.0


class UpstreamCallStats(Snapshot, frozen=True, kw_only=True, tag="upstream.calls"):
    """Per collector instance: cumulative upstream call statistics and circuit-breaker states.

    Attributes:
        service: the collector's service name.
        endpoints: one entry per (api, endpoint).
        circuits: breaker state (``closed`` / ``half_open`` / ``open``) per upstream, keyed ``"<api> <base>"``
            (base: ``scheme://host:port``, no credentials), e.g. ``"vllm http://10.0.0.7:8000"``.
    """

    service: str
    endpoints: list[EndpointCalls]
    circuits: dict[str, str] = {}

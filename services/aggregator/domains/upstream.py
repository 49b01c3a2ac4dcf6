"""Collectors' upstream call statistics → ``inferwatch_upstream_*``: every upstream's health in one place."""

from __future__ import annotations

from inferwatch.contracts.upstream import UpstreamCallStats
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for

CALLS = Family(
    "inferwatch_upstream_calls",
    "counter",
    "Upstream API calls made by the collectors, by service, api, endpoint and outcome.",
)
CALL_SECONDS = Family(
    "inferwatch_upstream_call_duration_seconds",
    "counter",
    "Cumulative seconds spent in upstream calls, by service, api and endpoint.",
)
CIRCUIT_OPEN = Family(
    "inferwatch_upstream_circuit_open",
    "gauge",
    "1 while a collector's circuit breaker to that upstream (api and base URL) is open (failing fast).",
)


def render_upstream(event: UpstreamCallStats, w: SeriesWriter) -> None:
    """One collector instance's upstream calls."""
    for ep in event.endpoints:
        for outcome, count in sorted(ep.outcomes.items()):
            w.counter(
                CALLS,
                label_block(
                    {
                        "service": event.service,
                        "instance": event.source,
                        "api": ep.api,
                        "endpoint": ep.endpoint,
                        "outcome": outcome,
                    }
                ),
                count,
            )
        w.counter(
            CALL_SECONDS,
            label_block({"service": event.service, "instance": event.source, "api": ep.api, "endpoint": ep.endpoint}),
            ep.duration_sum_s,
        )
    for upstream_key, state in sorted(event.circuits.items()):
        api, _, upstream = upstream_key.partition(" ")
        w.gauge(
            CIRCUIT_OPEN,
            label_block({"service": event.service, "instance": event.source, "api": api, "upstream": upstream}),
            1.0 if state == "open" else 0.0,
        )


RENDERERS = renderer_for(UpstreamCallStats, render_upstream)

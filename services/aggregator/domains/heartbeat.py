"""Service heartbeats → ``inferwatch_service_*``."""

from __future__ import annotations

from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for

SERVICE_INFO = Family(
    "inferwatch_service_info", "gauge", "One per live service instance, labelled with its version; always 1."
)
SERVICE_READY = Family("inferwatch_service_ready", "gauge", "1 when the service instance reports ready.")
SERVICE_START = Family("inferwatch_service_start_time_seconds", "gauge", "Service instance start (Unix seconds).")
SERVICE_TARGETS = Family("inferwatch_service_targets", "gauge", "Upstream targets this instance owns.")


def render_heartbeat(event: Heartbeat, w: SeriesWriter) -> None:
    """One service instance."""
    labels = label_block({"service": event.service, "instance": event.source})
    w.gauge(
        SERVICE_INFO, label_block({"service": event.service, "instance": event.source, "version": event.version}), 1.0
    )
    w.gauge(SERVICE_READY, labels, 1.0 if event.ready else 0.0)
    w.gauge(SERVICE_START, labels, event.started_at)
    w.gauge(SERVICE_TARGETS, labels, float(event.targets))


RENDERERS = renderer_for(Heartbeat, render_heartbeat)

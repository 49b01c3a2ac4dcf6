"""``inferwatch up``'s children → ``inferwatch_supervisor_*``."""

from __future__ import annotations

from inferwatch.contracts.supervisor import SupervisorSnapshot
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for

P = "inferwatch_supervisor_"
CHILD_UP = Family(
    P + "child_up", "gauge", "1 while the child process of inferwatch up runs, 0 while it waits to restart."
)
CHILD_RESTARTS = Family(P + "child_restarts", "counter", "Restarts of the child process by inferwatch up.")
CHILD_LAST_EXIT = Family(
    P + "child_last_exit_code", "gauge", "The child's last exit status (negative: the signal that killed it)."
)


def render_supervisor(event: SupervisorSnapshot, w: SeriesWriter) -> None:
    """One ``inferwatch up`` and its children."""
    for child in event.children:
        labels = label_block({"supervisor": event.source, "child": child.name})
        w.gauge(CHILD_UP, labels, 1.0 if child.state == "running" else 0.0)
        w.counter(CHILD_RESTARTS, labels, float(child.restarts_total))
        if child.last_exit_code is not None:
            w.gauge(CHILD_LAST_EXIT, labels, float(child.last_exit_code))


RENDERERS = renderer_for(SupervisorSnapshot, render_supervisor)

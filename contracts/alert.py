"""Alerts evaluated by the aggregator on live state, published on ``inferwatch.v1.alert.<name>.<fingerprint>``."""

from __future__ import annotations

from typing import ClassVar, Literal

from inferwatch.contracts.base import Occurrence

AlertState = Literal["firing", "resolved"]
Severity = Literal["critical", "warning", "info"]


class Alert(Occurrence, frozen=True, kw_only=True, tag="alert.state"):
    """An alert changed state. ``source`` is the alert's fingerprint (name + sorted labels).

    Attributes:
        name: rule name (``VllmTargetDown``).
        state: ``firing`` or ``resolved``.
        severity: ``critical`` / ``warning`` / ``info``.
        labels: identifying labels.
        annotations: ``summary``, ``description``, ``runbook_url``.
        starts_at: when the condition began (Unix seconds).
        ends_at: when it resolved, 0 while firing.
        value: the value that triggered it.
    """

    SUBJECT_KIND_FIELD: ClassVar[str] = "name"  # routed by rule: inferwatch.v1.alert.<name>.<fingerprint>

    name: str
    state: AlertState
    severity: Severity = "warning"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at: float = 0.0
    ends_at: float = 0.0
    value: float | None = None

"""The event model every service shares: snapshots of a source's whole state, and lifecycle facts.

A collector publishes the *whole current state* of one source each cycle (a `Snapshot`); the
aggregator keeps the last one per (type, source) and drops it after ``3 × interval_s`` of silence.
Facts that are not state (a container died, a model finished loading) are `Occurrence`s.
Units: timestamps are float Unix seconds, durations seconds, sizes bytes, ratios 0..1.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event on the bus.

    Each concrete type is declared with ``tag="<domain>.<kind>"``; the tag travels in the
    ``type`` field and names the subject ``inferwatch.v<SUBJECT_VERSION>.<domain>.<kind>.<source-key>``.
    A type that names ``SUBJECT_KIND_FIELD`` puts that field's value in the kind position instead
    (alerts their rule name, heartbeats their service), so subscribers and NATS permissions can pick one.

    Attributes:
        source: stable key of the thing described (a container id, a target URL, a proxy name).
        observed_at: when the collector observed it (Unix seconds).
        collector: instance id of the publishing service (``<service>@<host>:<pid>``).
    """

    SUBJECT_VERSION: ClassVar[int] = 1  # raised by a breaking change to the type (contracts.subjects)
    SUBJECT_KIND_FIELD: ClassVar[str] = ""  # a str field whose value takes the subject's kind token

    source: str
    observed_at: float
    collector: str


class Snapshot(Event, frozen=True, kw_only=True):
    """The whole current state of one source.

    Attributes:
        interval_s: how often the collector publishes this source; the aggregator expires the
            source after three intervals without a snapshot.
    """

    interval_s: float


class Occurrence(Event, frozen=True, kw_only=True):
    """A lifecycle fact that is not state (counted and put on timelines by the aggregator)."""


class Histogram(msgspec.Struct, frozen=True, array_like=True):
    """A cumulative histogram as Prometheus exposes it.

    Attributes:
        buckets: ``(upper_bound, cumulative_count)`` pairs for the *finite* bounds, increasing.
            The ``+Inf`` bucket is ``count`` (JSON cannot carry infinity, so it is never listed).
        sum: sum of observed values.
        count: number of observations.
    """

    buckets: list[tuple[float, float]]
    sum: float
    count: float

"""The aggregator's live state: the last snapshot per source and its expiry. Pure.

A source is keyed by (event type tag, source key). A snapshot replaces the previous one; it is
rendered lazily, once, at the next scrape after it changed. A source silent for three intervals is
expired: its series disappear, and a tombstone keeps ``inferwatch_source_up 0`` visible for a while
so an alert on it can fire, then that goes too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from msgspec.structs import replace

from inferwatch.contracts import Event, Snapshot, domain_kind
from inferwatch.services.aggregator.render import Family, RenderFn, SeriesWriter, fmt_value, label_block

SOURCE_UP = Family(
    "inferwatch_source_up",
    "gauge",
    "1 while a source's snapshots arrive; 0 after 3 intervals of silence (kept for a while).",
)
SOURCE_LAST_SEEN = Family(
    "inferwatch_source_last_seen_timestamp_seconds",
    "gauge",
    "When the source was last observed by its collector (Unix seconds).",
)
SOURCE_INTERVAL = Family(
    "inferwatch_source_interval_seconds", "gauge", "The publish interval the source's collector announces."
)


@dataclass(slots=True)
class SourceEntry:
    """One source's last snapshot and its rendering."""

    tag: str
    domain: str
    kind: str
    event: Snapshot
    received_at: float
    expires_at: float
    meta: dict[Family, str] | None = None  # the source_* series; None: a new snapshot arrived since the last scrape
    body: dict[Family, str] | None = None  # the renderer's chunks for ``body_from``
    body_from: Snapshot | None = None
    labels: str = ""  # the source's label block, built once: a busy source is re-rendered at every scrape


@dataclass(slots=True)
class Tombstone:
    """An expired source, still shown as down until ``forget_at``."""

    domain: str
    kind: str
    source: str
    last_seen: float
    forget_at: float
    rendered: dict[Family, str]


@dataclass
class IngestStats:
    """Counters the aggregator exports about itself."""

    events: dict[str, int] = field(default_factory=dict)  # by "<domain>.<kind>"
    decode_errors: dict[str, int] = field(default_factory=dict)  # by subject prefix
    dropped: dict[str, int] = field(default_factory=dict)  # by reason
    render_errors: dict[str, int] = field(default_factory=dict)  # by tag
    expired: int = 0


class SourceTable:
    """Last snapshot per source."""

    def __init__(
        self,
        renderers: Mapping[type[Event], RenderFn],
        *,
        expiry_intervals: float = 3.0,
        tombstone_s: float = 600.0,
        max_sources: int = 100_000,
    ) -> None:
        self._renderers = dict(renderers)
        self._expiry_intervals = expiry_intervals
        self._tombstone_s = tombstone_s
        self._max_sources = max_sources
        self.sources: dict[tuple[str, str], SourceEntry] = {}
        self.tombstones: dict[tuple[str, str], Tombstone] = {}
        self.stats = IngestStats()
        # Per event type: its tag, domain, kind and whether it is a `Snapshot` (worked out at its first event; an
        # isinstance check on a msgspec type goes through the metaclass, a dict look-up does not).
        self._tags: dict[type[Event], tuple[str, str, str, bool]] = {}

    def _tag(self, event_type: type[Event]) -> tuple[str, str, str, bool]:
        tag = self._tags.get(event_type)
        if tag is None:
            domain, kind = domain_kind(event_type)
            tag = self._tags[event_type] = (f"{domain}.{kind}", domain, kind, issubclass(event_type, Snapshot))
        return tag

    def apply(self, event: Event, now: float) -> None:
        """Take one decoded event (``now`` is the local monotonic clock).

        The ingest hot path (every message): one dict look-up per table, no allocation but the key.
        """
        tags = self._tags.get(type(event))
        tag, domain, kind, snapshot = tags if tags is not None else self._tag(type(event))
        events = self.stats.events
        events[tag] = events.get(tag, 0) + 1
        if snapshot:
            snap: Snapshot = event  # type: ignore[assignment]  # a Snapshot type, by its tag entry
            key = (tag, snap.source)
            interval = snap.interval_s
            expires_at = now + self._expiry_intervals * (interval if interval > 0.1 else 0.1)
            entry = self.sources.get(key)
            if entry is not None:
                if snap.observed_at < entry.event.observed_at:
                    self._drop("out_of_order")
                    return
                entry.event = snap
                entry.received_at = now
                entry.expires_at = expires_at
                entry.meta = None
                return
            if len(self.sources) >= self._max_sources:
                self._drop("max_sources")
                return
            self.tombstones.pop(key, None)
            self.sources[key] = SourceEntry(tag, domain, kind, snap, now, expires_at)

    def _drop(self, reason: str) -> None:
        self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + 1

    def expire(self, now: float) -> list[SourceEntry]:
        """Drop sources past their expiry (tombstoning them) and forget old tombstones."""
        gone = [key for key, entry in self.sources.items() if entry.expires_at <= now]
        expired: list[SourceEntry] = []
        for key in gone:
            entry = self.sources.pop(key)
            expired.append(entry)
            self.stats.expired += 1
            labels = label_block({"domain": entry.domain, "kind": entry.kind, "source": entry.event.source})
            writer = SeriesWriter()
            writer.gauge(SOURCE_UP, labels, 0.0)
            writer.gauge(SOURCE_LAST_SEEN, labels, entry.event.observed_at)
            self.tombstones[key] = Tombstone(
                entry.domain,
                entry.kind,
                entry.event.source,
                entry.event.observed_at,
                now + self._tombstone_s,
                writer.freeze(),
            )
        for key in [k for k, t in self.tombstones.items() if t.forget_at <= now]:
            del self.tombstones[key]
        return expired

    def remove(self, tag: str, source: str) -> None:
        """Forget a source at once (its owner said it is gone), without a tombstone."""
        self.sources.pop((tag, source), None)
        self.tombstones.pop((tag, source), None)

    def rendered(self, stale_s: float = 0.0) -> Iterator[Mapping[Family, str]]:
        """Every source's chunks, rendering the ones that changed since the last scrape.

        ``stale_s`` > 0: a changed source whose body was rendered from a snapshot observed less than ``stale_s``
        before its latest keeps that body (its ``source_*`` series are fresh); `render_changed`, run off the
        scrape path, brings bodies up to date."""
        for entry in self.sources.values():
            if entry.meta is None:
                previous = entry.body_from
                keep = stale_s > 0 and previous is not None and entry.event.observed_at - previous.observed_at < stale_s
                self._render(entry, body=not keep)
            yield entry.meta  # type: ignore[misc]  # set by _render
            yield entry.body  # type: ignore[misc]
        for tomb in self.tombstones.values():
            yield tomb.rendered

    def render_changed(self, deadline: float, clock: Callable[[], float]) -> bool:
        """Render the sources whose snapshot changed since their last rendering, until ``clock()`` passes
        ``deadline``; whether some are left."""
        for entry in self.sources.values():
            if entry.meta is None or entry.body_from is not entry.event:
                self._render(entry)
                if clock() >= deadline:
                    return True
        return False

    def _render(self, entry: SourceEntry, body: bool = True) -> None:
        event = entry.event
        labels = entry.labels or label_block({"domain": entry.domain, "kind": entry.kind, "source": event.source})
        entry.labels = labels
        # Three fixed gauges, written directly (not through a SeriesWriter): under a flood every busy source
        # comes here at every scrape, and this is what /metrics pays for ingest.
        entry.meta = {
            SOURCE_UP: f"{SOURCE_UP.name}{labels} 1\n",
            SOURCE_LAST_SEEN: f"{SOURCE_LAST_SEEN.name}{labels} {fmt_value(event.observed_at)}\n",
            SOURCE_INTERVAL: f"{SOURCE_INTERVAL.name}{labels} {fmt_value(event.interval_s)}\n",
        }
        if not body and entry.body is not None:
            return  # kept as rendered from ``body_from``
        previous = entry.body_from
        # A collector that re-sends the same content (heartbeats, container and GPU inventories) only moves
        # the observation time, which is in the meta series: keep the rendered body.
        if entry.body is None or previous is None or replace(event, observed_at=previous.observed_at) != previous:
            entry.body = self._render_body(entry)
        entry.body_from = event

    def _render_body(self, entry: SourceEntry) -> dict[Family, str]:
        writer = SeriesWriter()
        renderer = self._renderers.get(type(entry.event))
        if renderer is not None:
            try:
                renderer(entry.event, writer)
            except Exception:  # one bad snapshot must not break the scrape of everything else
                self.stats.render_errors[entry.tag] = self.stats.render_errors.get(entry.tag, 0) + 1
                writer = SeriesWriter()
        return writer.freeze()

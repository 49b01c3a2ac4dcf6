"""Each alert transition once in a JetStream stream, however many aggregator replicas evaluate the rules.

An HA pair of aggregators evaluates every rule twice. Before publishing a transition, a replica reads
the stream's last message on the alert's subject (one subject per fingerprint): if it already says this
state, another replica (or this one before a restart) published it, and nothing is sent. Otherwise the
transition is published with the message id ``<fingerprint>:<state>:<sequence of that last message>``,
which both replicas compute alike, so when they race the server's duplicate window keeps one copy.
No timestamp enters the id: the replicas' clocks and evaluation times may differ.

The stream is the exactly-once record; a plain subscription on ``inferwatch.*.alert.>`` may see a copy
from each replica when they race.
"""

from __future__ import annotations

from typing import Any

from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from inferwatch.contracts import DecodeError, decode, encode, subject_filter, subject_for
from inferwatch.contracts.alert import Alert
from inferwatch.shared.bus import Bus
from inferwatch.shared.kv import replicas_for

DUPLICATE_WINDOW_S = 120.0
MAX_AGE_S = 7 * 86400.0


class AlertStream:
    """Publishes alert transitions into one JetStream stream, once each (see the module docstring)."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.bus = bus
        self.name = name
        self._js: Any = bus.client.jetstream()

    @classmethod
    async def open(cls, bus: Bus, name: str) -> AlertStream:
        """Create the stream (or use the existing one) capturing every alert subject.

        Raises:
            Exception: what nats-py raises when JetStream is off or refuses.
        """
        stream = cls(bus, name)
        config = StreamConfig(
            name=name,
            subjects=[subject_filter("alert")],
            duplicate_window=DUPLICATE_WINDOW_S,
            max_age=MAX_AGE_S,
            num_replicas=replicas_for(bus),
        )
        try:
            await stream._js.stream_info(name)
        except NotFoundError:
            await stream._js.add_stream(config)
        return stream

    async def publish(self, alert: Alert) -> bool:
        """Publish ``alert`` unless the stream already holds this transition; True when this call stored it."""
        subject = subject_for(alert)
        last_seq, last_state = await self._last(subject)
        if last_state == alert.state:
            return False
        msg_id = f"{alert.source}:{alert.state}:{last_seq}"
        ack = await self._js.publish(
            subject, encode(alert, self.bus.settings.encoding), headers={"Nats-Msg-Id": msg_id}
        )
        return not ack.duplicate

    async def _last(self, subject: str) -> tuple[int, str | None]:
        """The sequence and state of the stream's last transition on ``subject`` (``(0, None)``: none yet)."""
        try:
            raw = await self._js.get_last_msg(self.name, subject)
        except NotFoundError:
            return 0, None
        try:
            event = decode(raw.data or b"")
        except DecodeError:
            return int(raw.seq or 0), None
        return int(raw.seq or 0), event.state if isinstance(event, Alert) else None

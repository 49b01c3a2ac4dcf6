"""inferwatch contracts: the event types and subjects services exchange over NATS.

This package is the only coupling between services. Events are frozen ``msgspec.Struct``s; each
is published on ``inferwatch.v<N>.<domain>.<kind>.<source-key>`` (see `contracts.subjects`).
"""

from inferwatch.contracts.base import Event, Histogram, Occurrence, Snapshot
from inferwatch.contracts.codec import DecodeError, Encoding, decode, encode
from inferwatch.contracts.registry import EVENT_TYPES, AnyEvent
from inferwatch.contracts.subjects import (
    ALL,
    HEARTBEAT_V1_FILTER,
    PREFIX,
    domain_kind,
    heartbeat_filter,
    sanitize_token,
    subject_address,
    subject_filter,
    subject_for,
    type_filter,
    version_token,
)

__all__ = [
    "ALL",
    "EVENT_TYPES",
    "HEARTBEAT_V1_FILTER",
    "PREFIX",
    "AnyEvent",
    "DecodeError",
    "Encoding",
    "Event",
    "Histogram",
    "Occurrence",
    "Snapshot",
    "decode",
    "domain_kind",
    "encode",
    "heartbeat_filter",
    "sanitize_token",
    "subject_address",
    "subject_filter",
    "subject_for",
    "type_filter",
    "version_token",
]

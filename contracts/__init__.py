"""inferwatch contracts: the event types and subjects services exchange over NATS.

This package is the only coupling between services. Events are frozen ``msgspec.Struct``s; each
is published on ``inferwatch.v<N>.<domain>.<kind>.<source-key>`` (see `contracts.subjects`).
"""

from inferwatch.contracts.base import Event, Histogram, Occurrence, Snapshot
from inferwatch.contracts.codec import DecodeError, Encoding, decode, encode
from inferwatch.contracts.registry import EVENT_TYPES, AnyEvent
from inferwatch.contracts.subjects import (
    ALL,
    PREFIX,
    domain_kind,
    sanitize_token,
    subject_filter,
    subject_for,
    version_token,
)

__all__ = [
    "ALL",
    "EVENT_TYPES",
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
    "sanitize_token",
    "subject_filter",
    "subject_for",
    "version_token",
]

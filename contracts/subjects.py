"""Versioned NATS subjects: ``inferwatch.v<N>.<domain>.<kind>.<source-key>``.

The version lives in the subject, per event type (``Event.SUBJECT_VERSION``): a breaking change to an
event moves it to the next version's subject, never a silent change under the old one.
``contracts/schema/events.json`` records every event's JSON Schema per version (older versions stay
beside the newer ones), and ``tests/unit/test_schema_snapshot.py`` fails on a breaking change without a bump
(rules and regeneration: ``scripts/schema_snapshot.py``).
"""

from __future__ import annotations

import hashlib
import re

from inferwatch.contracts.base import Event
from inferwatch.contracts.heartbeat import Heartbeat

PREFIX = "inferwatch"
ALL = f"{PREFIX}.>"  # every event of every version

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
_MAX_TOKEN = 96


def sanitize_token(value: str) -> str:
    """Make ``value`` one safe NATS subject token.

    NATS forbids ``.``, ``*``, ``>`` and whitespace inside a token; we also drop anything outside
    ``[A-Za-z0-9_-]`` so subjects stay readable in every tool. Replaced or overlong values get a short
    hash suffix so two different keys never share a token (``http://a:1`` vs ``http_a_1``).
    """
    if not value:
        return "_"
    safe = _UNSAFE.sub("_", value)
    if safe == value and len(safe) <= _MAX_TOKEN:
        return safe
    digest = hashlib.blake2s(value.encode(), digest_size=4).hexdigest()
    return f"{safe[: _MAX_TOKEN - 9]}-{digest}"


def domain_kind(event_type: type[Event]) -> tuple[str, str]:
    """The ``(domain, kind)`` of an event type, from its ``tag="<domain>.<kind>"``."""
    tag = event_type.__struct_config__.tag
    if not isinstance(tag, str) or tag.count(".") != 1:
        raise TypeError(f"{event_type.__name__} needs tag='<domain>.<kind>'")
    domain, kind = tag.split(".")
    return domain, kind


def version_token(event_type: type[Event]) -> str:
    """``v1``, ``v2``: the version token of an event type's subjects."""
    return f"v{event_type.SUBJECT_VERSION}"


def subject_for(event: Event) -> str:
    """The subject an event is published on.

    Alerts are routed by rule name (``inferwatch.v1.alert.<name>.<fingerprint>``) and heartbeats by
    service (``inferwatch.v2.heartbeat.<service>.<instance>``), so a consumer can subscribe to one
    (``SUBJECT_KIND_FIELD``); every other event by its tag and source key.
    """
    event_type = type(event)
    domain, kind = domain_kind(event_type)
    if event_type.SUBJECT_KIND_FIELD:
        kind = sanitize_token(str(getattr(event, event_type.SUBJECT_KIND_FIELD)))
    return f"{PREFIX}.{version_token(event_type)}.{domain}.{kind}.{sanitize_token(event.source)}"


def subject_address(event_type: type[Event]) -> str:
    """The subjects of an event type's current version as an AsyncAPI address.

    ``inferwatch.v1.vllm.instance.{source}``, ``inferwatch.v2.heartbeat.{service}.{source}``: the
    parameters in braces are ``source`` and, where the type has one, its ``SUBJECT_KIND_FIELD``.
    """
    domain, kind = domain_kind(event_type)
    if event_type.SUBJECT_KIND_FIELD:
        kind = "{" + event_type.SUBJECT_KIND_FIELD + "}"
    return f"{PREFIX}.{version_token(event_type)}.{domain}.{kind}.{{source}}"


def subject_filter(domain: str = "*", kind: str = "*") -> str:
    """A wildcard subscription for one domain/kind, any version (``inferwatch.*.vllm.*.>``)."""
    return f"{PREFIX}.*.{domain}.{kind}.>"


def type_filter(event_type: type[Event], kind: str = "*") -> str:
    """A subscription to the current version of one event type (``inferwatch.v1.vllm.instance.*``).

    ``kind`` picks one value of the type's ``SUBJECT_KIND_FIELD`` (one alert rule, one service's
    heartbeats); ``*`` takes them all.
    """
    domain, tag_kind = domain_kind(event_type)
    if kind != "*":
        if not event_type.SUBJECT_KIND_FIELD:
            raise TypeError(f"{event_type.__name__} has no SUBJECT_KIND_FIELD to pick a kind by")
        tag_kind = sanitize_token(kind)
    elif event_type.SUBJECT_KIND_FIELD:
        tag_kind = "*"
    return f"{PREFIX}.{version_token(event_type)}.{domain}.{tag_kind}.*"


def heartbeat_filter(service: str) -> str:
    """The heartbeats of one service's replicas: ``inferwatch.v2.heartbeat.<service>.*``."""
    return type_filter(Heartbeat, service)


# Heartbeats as version 1 published them (``inferwatch.v1.heartbeat.service.<instance>``, every service
# in one kind token): still read for one release, so replicas not yet upgraded are seen.
HEARTBEAT_V1_FILTER = f"{PREFIX}.v1.{domain_kind(Heartbeat)[0]}.{domain_kind(Heartbeat)[1]}.*"

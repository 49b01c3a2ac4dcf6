"""Versioned NATS subjects: ``inferwatch.v<N>.<domain>.<kind>.<source-key>``.

The version lives in the subject, per event type (``Event.SUBJECT_VERSION``): a breaking change to an
event moves it to the next version's subject, never a silent change under the old one
(``tests`` hold a JSON Schema snapshot of every event and fail on a breaking change without a bump).
"""

from __future__ import annotations

import hashlib
import re

from inferwatch.contracts.base import Event

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

    Alerts are routed by rule name (``inferwatch.v1.alert.<name>.<fingerprint>``) so a consumer can
    subscribe to one rule; every other event by its tag and source key.
    """
    domain, kind = domain_kind(type(event))
    name = getattr(event, "name", None) if domain == "alert" else None
    if isinstance(name, str):
        kind = sanitize_token(name)
    return f"{PREFIX}.{version_token(type(event))}.{domain}.{kind}.{sanitize_token(event.source)}"


def subject_filter(domain: str = "*", kind: str = "*", version: str = "*") -> str:
    """A wildcard subscription for one domain/kind, any version unless given (``inferwatch.*.vllm.*.>``)."""
    return f"{PREFIX}.{version}.{domain}.{kind}.>"

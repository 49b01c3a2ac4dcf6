"""Versioned NATS subjects: ``inferwatch.v1.<domain>.<kind>.<source-key>``.

The version lives in the subject: a breaking change to an event is a new ``v2`` subject,
never a silent change to ``v1``.
"""

from __future__ import annotations

import hashlib
import re

from inferwatch.contracts.base import Event

ROOT = "inferwatch.v1"
ALL = f"{ROOT}.>"

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


def subject_for(event: Event) -> str:
    """The subject an event is published on.

    Alerts are routed by rule name (``inferwatch.v1.alert.<name>.<fingerprint>``) so a consumer can
    subscribe to one rule; every other event by its tag and source key.
    """
    domain, kind = domain_kind(type(event))
    name = getattr(event, "name", None) if domain == "alert" else None
    if isinstance(name, str):
        kind = sanitize_token(name)
    return f"{ROOT}.{domain}.{kind}.{sanitize_token(event.source)}"


def subject_filter(domain: str = "*", kind: str = "*") -> str:
    """A wildcard subscription for one domain/kind (``inferwatch.v1.vllm.*.>``-style)."""
    return f"{ROOT}.{domain}.{kind}.>"

"""Keeping secrets out of labels and logs: credential-free URLs, secret headers, httpx's own log lines."""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import httpx

from inferwatch.shared.log import register_secret

_SENSITIVE_HEADER_WORDS: Final = ("auth", "key", "token", "secret", "cookie", "password")


def strip_credentials(url: str) -> str:
    """``url`` without userinfo, query or fragment (they may hold keys): what may go in a label or a log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    netloc = parts.hostname or ""
    if parts.hostname and ":" in parts.hostname:
        netloc = f"[{parts.hostname}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def register_if_sensitive(name: str, value: str) -> None:
    """Register a header's value (and the credential after its scheme) as a secret when its name says so."""
    lowered = name.lower()
    if any(word in lowered for word in _SENSITIVE_HEADER_WORDS):
        register_secret(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.isalpha():
            register_secret(credential.strip())


class _RedactUrlFilter(logging.Filter):
    """httpx logs every request's full URL at INFO; drop userinfo and query strings from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(_redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def _redact_url(url: httpx.URL) -> str:
    text = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"
    return text + ("?…" if url.query else "")


def install_httpx_log_filter() -> None:
    """Make httpx's own request log lines secret-free (idempotent)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrlFilter) for f in logger.filters):
        logger.addFilter(_RedactUrlFilter())

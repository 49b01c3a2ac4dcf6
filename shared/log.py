"""Structured logs (JSON lines on stderr, or plain text) with secret redaction and rate limiting."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MIN_SECRET_LEN = 4  # shorter values would redact ordinary words


def register_secret(value: str) -> None:
    """Never let ``value`` appear in a log line again (it becomes ``***``)."""
    if len(value) >= _MIN_SECRET_LEN:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, msg, plus any ``extra=`` fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal; extras appended as ``key=value``."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s " + service + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")]
        return redact(line + (" " + " ".join(extras) if extras else ""))


def configure_logging(service: str, *, level: str = "info", fmt: str = "json") -> None:
    """Route the root logger to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter(service) if fmt == "text" else JsonFormatter(service))
    handler.set_name("inferwatch")
    root = logging.getLogger()
    # Replace only our own handler: others (a test runner's capture) stay.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "inferwatch"] + [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "httpx", "httpcore", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RateLimitedLog:
    """Let one line per key through per ``interval_s``; count what was held back.

    Used where a broken upstream would otherwise log on every message (a malformed subject, a
    full publish buffer).
    """

    def __init__(self, interval_s: float = 60.0, clock: Any = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether to log now, and how many lines for this key were suppressed since the last one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        if len(self._last) > 10_000:  # bounded: forget the oldest keys
            self._last.clear()
        self._last[key] = now
        return True, self._suppressed.pop(key, 0)

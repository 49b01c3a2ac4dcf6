"""The closed set of upstream call outcomes: metric labels, error fields and what services compare against."""

from __future__ import annotations

import enum
import ssl
from typing import Final

import aiohttp
import httpx


class Outcome(enum.StrEnum):
    """How one upstream call (or attempt) ended; the value is the ``outcome`` metric label."""

    OK = "ok"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    READ_ERROR = "read_error"
    PROTOCOL_ERROR = "protocol_error"
    TRANSPORT_ERROR = "transport_error"
    HTTP_3XX = "http_3xx"
    HTTP_4XX = "http_4xx"
    HTTP_401 = "http_401"
    HTTP_403 = "http_403"
    HTTP_404 = "http_404"
    HTTP_429 = "http_429"
    HTTP_5XX = "http_5xx"
    TOO_LARGE = "too_large"
    INVALID_BODY = "invalid_body"
    INVALID_URL = "invalid_url"
    CIRCUIT_OPEN = "circuit_open"


#: Outcomes that count as a failure for the circuit breaker: the upstream is unreachable, broken or
#: overloaded. Everything else (a 4xx, a 3xx, an oversized or undecodable body) proves it is up and
#: answering, so it counts as a success for the breaker (a missing ``/version`` must not trip it).
BREAKER_FAILURES: Final[frozenset[Outcome]] = frozenset(
    {
        Outcome.TIMEOUT,
        Outcome.CONNECT_ERROR,
        Outcome.TLS_ERROR,
        Outcome.READ_ERROR,
        Outcome.PROTOCOL_ERROR,
        Outcome.TRANSPORT_ERROR,
        Outcome.HTTP_5XX,
        Outcome.HTTP_429,
    }
)

#: Transport outcomes worth another attempt (a TLS failure is deterministic, so it is not retried).
RETRYABLE_TRANSPORT: Final[frozenset[Outcome]] = frozenset(
    {Outcome.TIMEOUT, Outcome.CONNECT_ERROR, Outcome.READ_ERROR, Outcome.PROTOCOL_ERROR, Outcome.TRANSPORT_ERROR}
)

#: Outcomes that say nothing answered at all (as opposed to an answer we did not like).
UNREACHABLE: Final[frozenset[Outcome]] = frozenset(
    {Outcome.CONNECT_ERROR, Outcome.TIMEOUT, Outcome.CIRCUIT_OPEN, Outcome.TLS_ERROR}
)

_SPECIFIC_STATUSES: Final = {401: Outcome.HTTP_401, 403: Outcome.HTTP_403, 404: Outcome.HTTP_404, 429: Outcome.HTTP_429}


def status_outcome(status: int) -> Outcome:
    """The outcome of a non-2xx answer (statuses below 400 count as redirects, 5xx and above as server errors)."""
    specific = _SPECIFIC_STATUSES.get(status)
    if specific is not None:
        return specific
    if status < 400:
        return Outcome.HTTP_3XX
    if status < 500:
        return Outcome.HTTP_4XX
    return Outcome.HTTP_5XX


def transport_outcome(exc: httpx.HTTPError) -> Outcome:
    """The outcome of an httpx failure before or while reading an answer."""
    if _ssl_in_chain(exc):
        return Outcome.TLS_ERROR
    if isinstance(exc, httpx.ConnectError):
        return Outcome.CONNECT_ERROR
    if isinstance(exc, httpx.ProtocolError):
        return Outcome.PROTOCOL_ERROR
    if isinstance(exc, httpx.NetworkError):
        return Outcome.READ_ERROR
    if isinstance(exc, httpx.DecodingError):
        return Outcome.INVALID_BODY
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Outcome.INVALID_URL
    return Outcome.TRANSPORT_ERROR


def aiohttp_outcome(exc: aiohttp.ClientError) -> Outcome:
    """The outcome of an aiohttp failure before or while reading an answer (the same as httpx's for the same fault)."""
    if isinstance(exc, aiohttp.ClientSSLError) or _ssl_in_chain(exc):
        return Outcome.TLS_ERROR
    if isinstance(exc, aiohttp.InvalidURL):
        return Outcome.INVALID_URL
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome.CONNECT_ERROR
    # a malformed status line or header, a body cut short, a peer that closed before answering: httpx's
    # RemoteProtocolError for the same faults
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return Outcome.PROTOCOL_ERROR
    if isinstance(exc, aiohttp.ClientOSError):
        return Outcome.READ_ERROR
    return Outcome.TRANSPORT_ERROR


def _ssl_in_chain(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False

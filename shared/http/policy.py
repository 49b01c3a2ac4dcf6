"""Value objects that configure an :class:`~inferwatch.shared.http.UpstreamClient`, one concern each."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    """How a call is retried.

    Attributes:
        attempts: total attempts per call, including the first (1 = never retry).
        base_delay_s: backoff before the first retry; doubles for each further retry.
        max_delay_s: cap on one backoff, and the longest ``Retry-After`` honoured: an upstream asking for
            more makes the call fail at once with ``retry_after_s`` set so the caller can reschedule.
        jitter: fraction of *partial* jitter: the delay is drawn uniformly from
            ``[delay * (1 - jitter), delay]`` (0 = deterministic, 1 = full jitter).
        retry_on_status: HTTP statuses retried (others fail at once). Transport failures (timeouts,
            connection errors, dropped connections) are always retried; TLS failures never are.
    """

    attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    jitter: float = 0.2
    retry_on_status: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be >= 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("RetryPolicy delays must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("RetryPolicy.jitter must be within [0, 1]")

    def backoff_s(self, retry: int, rand: float) -> float:
        """Delay before retry number ``retry`` (1-based), given a uniform random number in ``[0, 1)``."""
        delay = min(self.max_delay_s, self.base_delay_s * (2.0 ** (retry - 1)))
        return delay * (1.0 - self.jitter * rand)


@dataclass(frozen=True)
class BreakerPolicy:
    """Circuit breaker settings.

    Attributes:
        failure_threshold: consecutive failed calls (each after its retries; see ``BREAKER_FAILURES``)
            that open the circuit.
        reset_after_s: how long the circuit stays open before one trial call (single attempt) is let
            through in the half-open state; its success closes the circuit, its failure re-opens it.
    """

    failure_threshold: int = 5
    reset_after_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("BreakerPolicy.failure_threshold must be >= 1")
        if self.reset_after_s < 0:
            raise ValueError("BreakerPolicy.reset_after_s must be >= 0")


@dataclass(frozen=True)
class Limits:
    """Bounds on one attempt and on the connection pool.

    Attributes:
        timeout_s: deadline of one attempt: connect, headers and the whole body.
        max_body_bytes: cap on the decoded body; larger responses fail with outcome ``too_large``.
        keepalive_s: how long an idle connection is kept for reuse; a poller should keep it longer than its
            interval, or every cycle pays a new TCP (and TLS) handshake.
    """

    timeout_s: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    keepalive_s: float = 5.0

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")


@dataclass(frozen=True)
class CachePolicy:
    """The per-client TTL cache of successful responses (a call opts in with ``cache_ttl_s``).

    Attributes:
        max_entries: bound of the cache (oldest entries evicted first).
    """

    max_entries: int = 256


@dataclass(frozen=True)
class CallPolicy:
    """Everything that decides how a client's calls behave.

    Attributes:
        limits: per-attempt deadline, body cap, keep-alive.
        retry: retry policy.
        breaker: circuit breaker policy.
        cache: TTL cache bound.
        follow_redirects: follow up to 5 redirects, only to the same origin (or its https upgrade) so
            credentials never travel to another host; otherwise 3xx fails with outcome ``http_3xx``.
    """

    limits: Limits = Limits()
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    cache: CachePolicy = CachePolicy()
    follow_redirects: bool = False


@dataclass(frozen=True)
class ClientSeams:
    """What tests replace to drive a client without a network or real time.

    Attributes:
        sleep: how to wait between attempts.
        clock: monotonic clock for the breaker and the cache.
        rand: uniform ``[0, 1)`` source for jitter.
        transport: custom httpx transport (``tls`` then does not apply, and calls go over httpx instead of the
            aiohttp wire real upstreams get).
    """

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    transport: httpx.AsyncBaseTransport | None = None

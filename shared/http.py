"""The resilient upstream HTTP client every collector uses to talk to vLLM, LiteLLM, Langfuse, EPP….

One :class:`UpstreamClient` per upstream base URL gives:

* a hard per-attempt deadline (connect + headers + the whole streamed body), so a server that hangs or
  dribbles bytes forever costs at most ``timeout_s`` per attempt;
* a response size cap enforced while streaming (and before, from ``Content-Length``), applied to the
  *decoded* body with a bounded decompressor, so neither a huge body nor a gzip bomb is ever buffered
  beyond the cap plus one chunk;
* retries with exponential backoff and jitter for transport failures and ``RetryPolicy.retry_on_status``,
  honouring ``Retry-After``;
* a circuit breaker (closed → open → half-open → closed);
* an optional per-call TTL cache of successful responses;
* self-metrics on a Prometheus registry (:class:`UpstreamMetrics`) and one WARNING log line per failed call.

Secrets (auth headers, basic-auth passwords, URL userinfo, query strings) never reach exception messages,
log lines or metric labels: errors and logs carry only the api name, the caller's bounded endpoint
template, an outcome label, the HTTP status and the attempt count.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import os
import random
import ssl
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType, TracebackType
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit
from weakref import WeakKeyDictionary

import httpx
import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inferwatch.shared.log import register_secret

__all__ = [
    "BreakerPolicy",
    "CircuitOpen",
    "Response",
    "RetryPolicy",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamMetrics",
]

log = logging.getLogger("inferwatch.http")

#: Circuit states, as reported by :meth:`UpstreamClient.circuit_state`, and their gauge values.
CIRCUIT_VALUES: Final[Mapping[str, int]] = MappingProxyType({"closed": 0, "half_open": 1, "open": 2})

#: Outcomes that count as a failure for the circuit breaker: the upstream is unreachable, broken or
#: overloaded. Everything else (a 4xx, a 3xx, an oversized or undecodable body) proves it is up and
#: answering, so it counts as a success for the breaker (a missing ``/version`` must not trip it).
BREAKER_FAILURES: Final[frozenset[str]] = frozenset(
    {"timeout", "connect_error", "tls_error", "read_error", "protocol_error", "transport_error", "http_5xx", "http_429"}
)

#: Transport outcomes worth another attempt (a TLS failure is deterministic, so it is not retried).
_RETRYABLE_TRANSPORT: Final[frozenset[str]] = frozenset(
    {"timeout", "connect_error", "read_error", "protocol_error", "transport_error"}
)

_MAX_REDIRECTS: Final = 5
_SENSITIVE_HEADER_WORDS: Final = ("auth", "key", "token", "secret", "cookie", "password")
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class UpstreamError(Exception):
    """Raised for any failed upstream call after retries.

    The message and ``repr`` hold only the api, the endpoint template, the outcome, the HTTP status and
    the attempt count: never headers, URL userinfo or query strings. The underlying transport exception
    (if any) is chained as ``__cause__`` for debugging; its text comes from the network stack (e.g.
    ``[Errno 111] Connection refused``), not from the request.

    Attributes:
        api: upstream kind given to the client (``vllm``, ``litellm``…).
        endpoint: the caller's bounded route template (``/v1/models``).
        outcome: short label: ``timeout``, ``connect_error``, ``tls_error``, ``read_error``,
            ``protocol_error``, ``transport_error``, ``http_3xx``, ``http_4xx``, ``http_401``, ``http_403``,
            ``http_404``, ``http_429``, ``http_5xx``, ``too_large``, ``invalid_body``, ``invalid_url``,
            ``circuit_open``.
        status: HTTP status of the last response, if there was one.
        retry_after_s: seconds the upstream asked us to wait (``Retry-After``), or until the circuit
            half-opens for :class:`CircuitOpen`.
        attempts: how many attempts were made (0 for :class:`CircuitOpen`).
    """

    def __init__(
        self,
        api: str,
        endpoint: str,
        outcome: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.api = api
        self.endpoint = endpoint
        self.outcome = outcome
        self.status = status
        self.retry_after_s = retry_after_s
        self.attempts = attempts
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.api} {self.endpoint}: {self.outcome}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        if self.retry_after_s is not None:
            text += f", retry after {self.retry_after_s:.3g}s"
        return text + f" after {self.attempts} attempt{'s' if self.attempts != 1 else ''}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api={self.api!r}, endpoint={self.endpoint!r}, outcome={self.outcome!r}, "
            f"status={self.status!r}, retry_after_s={self.retry_after_s!r}, attempts={self.attempts!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keep it picklable despite the keyword-only constructor
        return (
            _rebuild_error,
            (type(self), self.api, self.endpoint, self.outcome, self.status, self.retry_after_s, self.attempts),
        )


def _rebuild_error(
    cls: type[UpstreamError],
    api: str,
    endpoint: str,
    outcome: str,
    status: int | None,
    retry_after_s: float | None,
    attempts: int,
) -> UpstreamError:
    return cls(api, endpoint, outcome, status=status, retry_after_s=retry_after_s, attempts=attempts)


class CircuitOpen(UpstreamError):  # noqa: N818 (public name fixed by the API)
    """The client's circuit breaker is open: the call failed fast without any network I/O.

    ``outcome`` is ``circuit_open``; ``retry_after_s`` is how long until the breaker lets a trial through.
    """


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
class Response:
    """A successful (2xx) upstream response, fully read.

    Attributes:
        status: HTTP status.
        headers: response headers, lower-cased names (repeated headers joined with ``", "``), read-only.
        body: the decoded body (``Content-Encoding`` undone), at most ``max_body_bytes``.
        elapsed_s: duration of the attempt that produced it (of the original call for a cache hit).
        from_cache: whether it came from the client's TTL cache.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_s: float
    from_cache: bool = False


@dataclass
class _Families:
    requests: Counter
    duration: Histogram
    circuit: Gauge
    retries: Counter
    cache_hits: Counter
    circuits: dict[str, dict[object, tuple[str, str]]] = field(default_factory=dict)  # api -> token -> (base, state)


_FAMILIES: WeakKeyDictionary[CollectorRegistry, _Families] = WeakKeyDictionary()


class UpstreamMetrics:
    """Self-metrics for every upstream call, registered on a prometheus_client ``CollectorRegistry``.

    Families (``endpoint`` is always the caller's bounded route template, never a raw URL):

    * ``inferwatch_upstream_requests_total{api,endpoint,outcome}``: one per attempt sent to the network
      (outcome ``ok`` on success), plus one ``circuit_open`` per call failed fast by an open breaker.
      Cache hits are not requests: they count in ``cache_hits_total`` only.
    * ``inferwatch_upstream_request_duration_seconds{api,endpoint}``: histogram, one per network attempt.
    * ``inferwatch_upstream_circuit_state{api}``: 0 closed, 1 half-open, 2 open; with several clients for
      the same api (one per vLLM target) it shows the worst of them (see :meth:`circuit_states`).
    * ``inferwatch_upstream_retries_total{api,endpoint}``: attempts after the first.
    * ``inferwatch_upstream_cache_hits_total{api,endpoint}``.

    Creating it twice on the same registry is safe: both share the same families.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        families = _FAMILIES.get(registry)
        if families is None:
            families = _Families(
                requests=Counter(
                    "inferwatch_upstream_requests",
                    "Upstream HTTP calls by outcome (per attempt).",
                    ["api", "endpoint", "outcome"],
                    registry=registry,
                ),
                duration=Histogram(
                    "inferwatch_upstream_request_duration_seconds",
                    "Duration of upstream HTTP attempts.",
                    ["api", "endpoint"],
                    buckets=_DURATION_BUCKETS,
                    registry=registry,
                ),
                circuit=Gauge(
                    "inferwatch_upstream_circuit_state",
                    "Upstream circuit breaker state (0 closed, 1 half-open, 2 open; worst client).",
                    ["api"],
                    registry=registry,
                ),
                retries=Counter(
                    "inferwatch_upstream_retries",
                    "Upstream HTTP attempts after the first.",
                    ["api", "endpoint"],
                    registry=registry,
                ),
                cache_hits=Counter(
                    "inferwatch_upstream_cache_hits",
                    "Upstream calls answered from the TTL cache.",
                    ["api", "endpoint"],
                    registry=registry,
                ),
            )
            _FAMILIES[registry] = families
        self._f = families

    def observe(self, api: str, endpoint: str, outcome: str, duration_s: float | None) -> None:
        """Count one call attempt (``duration_s`` None when no network I/O happened)."""
        self._f.requests.labels(api, endpoint, outcome).inc()
        if duration_s is not None:
            self._f.duration.labels(api, endpoint).observe(duration_s)

    def retried(self, api: str, endpoint: str) -> None:
        """Count one retry."""
        self._f.retries.labels(api, endpoint).inc()

    def cache_hit(self, api: str, endpoint: str) -> None:
        """Count one cache hit."""
        self._f.cache_hits.labels(api, endpoint).inc()

    def set_circuit(self, token: object, api: str, base: str, state: str | None) -> None:
        """Record one client's breaker state (``None`` forgets the client); updates the api's gauge."""
        clients = self._f.circuits.setdefault(api, {})
        if state is None:
            clients.pop(token, None)
        else:
            clients[token] = (base, state)
        worst = max((CIRCUIT_VALUES[s] for _, s in clients.values()), default=0)
        self._f.circuit.labels(api).set(worst)

    def circuit_states(self) -> dict[str, str]:
        """Breaker state per live client, keyed ``"api base"`` (base is ``scheme://host:port``, no secrets)."""
        return {f"{api} {base}": state for api, clients in self._f.circuits.items() for base, state in clients.values()}


class _AttemptError(Exception):
    """One failed attempt (internal)."""

    def __init__(self, outcome: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.status = status
        self.retry_after_s = retry_after_s


_CacheKey = tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


class UpstreamClient:
    """A resilient HTTP client for one upstream base URL (see the module docstring).

    Args:
        api: upstream kind, used as the ``api`` label and in errors (``vllm``, ``litellm``…).
        base_url: ``http(s)://host:port[/prefix]``; userinfo in it becomes basic auth (and is stripped
            from the URL so it never shows up in any log).
        metrics: where to count calls.
        headers: sent with every request (e.g. ``Authorization``); sensitive values are registered with
            :func:`shared.log.register_secret` so the service's log formatters redact them too.
        auth: an ``httpx.Auth`` or a ``(user, password)`` pair for basic auth.
        timeout_s: deadline of one attempt: connect, headers and the whole body.
        max_body_bytes: cap on the decoded body; larger responses fail with outcome ``too_large``.
        retry: retry policy.
        breaker: circuit breaker policy.
        verify: TLS verification: True (system/certifi CAs, on by default), False, a CA bundle path (file
            or directory) or an ``ssl.SSLContext``.
        cert: client certificate and key file paths, for mutual TLS.
        transport: custom httpx transport (tests); ``verify``/``cert`` then do not apply.
        follow_redirects: follow up to 5 redirects, only to the same origin (or its https upgrade) so
            credentials never travel to another host; otherwise 3xx fails with outcome ``http_3xx``.
        trust_env: let httpx read proxy/CA settings from the environment.
        keepalive_s: how long an idle connection is kept for reuse; a poller should keep it longer than its
            interval, or every cycle pays a new TCP (and TLS) handshake.
        cache_max_entries: bound of the TTL cache (oldest entries evicted first).
        sleep: how to wait between attempts (tests inject a recorder).
        clock: monotonic clock for the breaker and the cache.
        rand: uniform ``[0, 1)`` source for jitter.
    """

    def __init__(
        self,
        api: str,
        base_url: str,
        *,
        metrics: UpstreamMetrics,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout_s: float = 5.0,
        max_body_bytes: int = 16 * 1024 * 1024,
        retry: RetryPolicy = RetryPolicy(),
        breaker: BreakerPolicy = BreakerPolicy(),
        verify: bool | str | ssl.SSLContext = True,
        cert: tuple[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        follow_redirects: bool = False,
        trust_env: bool = True,
        cache_max_entries: int = 256,
        keepalive_s: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL:
            raise ValueError(f"invalid base_url for upstream {api!r}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url for upstream {api!r} must be an absolute http(s) URL")
        if url.username or url.password:
            if auth is None:
                auth = (url.username, url.password)
            url = url.copy_with(username=None, password=None)
        if isinstance(auth, tuple):
            register_secret(auth[1])
            auth = httpx.BasicAuth(auth[0], auth[1])
        merged = {"accept-encoding": "gzip, deflate", "user-agent": "inferwatch"}
        for name, value in (headers or {}).items():
            merged[name.lower()] = value
            _register_if_sensitive(name, value)

        self.api = api
        self.base = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._max_body = max_body_bytes
        self._retry = retry
        self._breaker = breaker
        self._follow = follow_redirects
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._cache: OrderedDict[_CacheKey, tuple[float, Response]] = OrderedDict()
        self._cache_max = cache_max_entries
        self._state = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._token = object()
        self._client = httpx.AsyncClient(
            base_url=url,
            headers=merged,
            auth=auth,
            timeout=httpx.Timeout(timeout_s),
            verify=_ssl_context(verify, cert, trust_env) if transport is None else True,
            transport=transport,
            follow_redirects=False,
            trust_env=trust_env,
            limits=httpx.Limits(keepalive_expiry=keepalive_s),
        )
        metrics.set_circuit(self._token, api, self.base, "closed")

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool and drop this client from the circuit gauge."""
        self._metrics.set_circuit(self._token, self.api, self.base, None)
        await self._client.aclose()

    def circuit_state(self) -> str:
        """``closed``, ``half_open`` (open, but the next call is let through as a trial) or ``open``."""
        if self._state == "open" and self._clock() - self._opened_at >= self._breaker.reset_after_s:
            return "half_open"
        return self._state

    async def get(
        self,
        path: str,
        *,
        endpoint: str | None = None,
        params: Mapping[str, str | int | float] | None = None,
        cache_ttl_s: float | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Response:
        """GET ``path`` (relative to the base URL) and return the 2xx response.

        Args:
            path: request path, appended to the base URL.
            endpoint: bounded route template for metrics and errors; defaults to ``path`` without its
                query string (pass it whenever the path holds ids).
            params: query parameters.
            cache_ttl_s: reuse a successful response for the same (path, params, headers) this long.
            headers: extra headers for this call.
            timeout_s: per-attempt deadline for this call (default: the client's).

        Raises:
            UpstreamError: on any failure after retries (``CircuitOpen`` when the breaker is open).
        """
        response, _ = await self._fetch(path, endpoint, params, cache_ttl_s, headers, timeout_s, decode=None)
        return response

    async def get_json(
        self,
        path: str,
        *,
        endpoint: str | None = None,
        params: Mapping[str, str | int | float] | None = None,
        cache_ttl_s: float | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Like :meth:`get`, decoding the body as JSON with msgspec.

        Raises:
            UpstreamError: as :meth:`get`, or with outcome ``invalid_body`` when the body is not JSON
                (such a response is never cached).
        """
        _, value = await self._fetch(path, endpoint, params, cache_ttl_s, headers, timeout_s, decode=_decode_json)
        return value

    async def _fetch(
        self,
        path: str,
        endpoint: str | None,
        params: Mapping[str, str | int | float] | None,
        cache_ttl_s: float | None,
        headers: Mapping[str, str] | None,
        timeout_s: float | None,
        decode: Callable[[bytes], Any] | None,
    ) -> tuple[Response, Any]:
        endpoint = endpoint if endpoint is not None else path.split("?", 1)[0]
        for name, value in (headers or {}).items():
            _register_if_sensitive(name, value)
        key: _CacheKey | None = None
        if cache_ttl_s is not None and cache_ttl_s > 0:
            key = (
                path,
                tuple(sorted((k, str(v)) for k, v in (params or {}).items())),
                tuple(sorted((k.lower(), v) for k, v in (headers or {}).items())),
            )
            cached = self._cache_get(key)
            if cached is not None:
                self._metrics.cache_hit(self.api, endpoint)
                value = self._decode(decode, cached.body, endpoint, attempts=0)
                return cached, value

        trial = self._admit(endpoint)
        attempts = 1 if trial else self._retry.attempts
        deadline_s = timeout_s if timeout_s is not None else self._timeout_s
        try:
            response, value = await self._attempts(path, endpoint, params, headers, deadline_s, attempts, decode)
        except UpstreamError as exc:
            self._settle(exc.outcome not in BREAKER_FAILURES, trial)
            raise
        except BaseException:  # cancelled: release a half-open trial without judging the upstream
            if trial:
                self._trial_in_flight = False
            raise
        self._settle(True, trial)
        if key is not None and cache_ttl_s is not None:
            self._cache_put(key, response, cache_ttl_s)
        return response, value

    async def _attempts(
        self,
        path: str,
        endpoint: str,
        params: Mapping[str, str | int | float] | None,
        headers: Mapping[str, str] | None,
        deadline_s: float,
        attempts: int,
        decode: Callable[[bytes], Any] | None,
    ) -> tuple[Response, Any]:
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                self._metrics.retried(self.api, endpoint)
            started = time.perf_counter()
            try:
                response = await self._attempt(path, params, headers, deadline_s)
            except _AttemptError as failed:
                duration = time.perf_counter() - started
                self._metrics.observe(self.api, endpoint, failed.outcome, duration)
                delay = self._retry_delay(failed, attempt, attempts)
                if delay is None:
                    self._log_failure(endpoint, failed, attempt)
                    raise UpstreamError(
                        self.api,
                        endpoint,
                        failed.outcome,
                        status=failed.status,
                        retry_after_s=failed.retry_after_s,
                        attempts=attempt,
                    ) from failed.__cause__
                log.info(
                    "upstream attempt failed, retrying in %.3fs: api=%s endpoint=%s outcome=%s status=%s attempt=%d",
                    delay,
                    self.api,
                    endpoint,
                    failed.outcome,
                    failed.status,
                    attempt,
                    extra={
                        "api": self.api,
                        "endpoint": endpoint,
                        "outcome": failed.outcome,
                        "status": failed.status,
                        "attempt": attempt,
                    },
                )
                await self._sleep(delay)
                continue
            duration = time.perf_counter() - started
            if decode is None:
                self._metrics.observe(self.api, endpoint, "ok", duration)
                return response, None
            try:
                value = decode(response.body)
            except msgspec.DecodeError as exc:
                invalid = _AttemptError("invalid_body", response.status)
                self._metrics.observe(self.api, endpoint, invalid.outcome, duration)
                self._log_failure(endpoint, invalid, attempt)
                raise UpstreamError(
                    self.api, endpoint, "invalid_body", status=response.status, attempts=attempt
                ) from exc
            self._metrics.observe(self.api, endpoint, "ok", duration)
            return response, value

    def _retry_delay(self, failed: _AttemptError, attempt: int, attempts: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if failed.status is not None:
            retryable = failed.status in self._retry.retry_on_status
        else:
            retryable = failed.outcome in _RETRYABLE_TRANSPORT
        if not retryable:
            return None
        if failed.retry_after_s is not None and failed.retry_after_s > self._retry.max_delay_s:
            return None  # the upstream wants a longer pause than we wait inline: let the caller reschedule
        if attempt >= attempts:
            return None
        if failed.retry_after_s is not None:
            return failed.retry_after_s
        return self._retry.backoff_s(attempt, self._rand())

    async def _attempt(
        self,
        path: str,
        params: Mapping[str, str | int | float] | None,
        headers: Mapping[str, str] | None,
        deadline_s: float,
    ) -> Response:
        """One attempt under one overall deadline; every failure becomes ``_AttemptError``."""
        try:
            async with asyncio.timeout(deadline_s):
                return await self._exchange(path, params, headers, deadline_s)
        except _AttemptError:
            raise
        except httpx.InvalidURL as exc:
            raise _AttemptError("invalid_url") from exc
        except TimeoutError as exc:  # our overall deadline (before OSError: TimeoutError is one)
            raise _AttemptError("timeout") from exc
        except httpx.TimeoutException as exc:
            raise _AttemptError("timeout") from exc
        except httpx.HTTPError as exc:
            raise _AttemptError(_transport_outcome(exc)) from exc
        except ssl.SSLError as exc:
            raise _AttemptError("tls_error") from exc
        except OSError as exc:
            raise _AttemptError("connect_error") from exc

    async def _exchange(
        self,
        path: str,
        params: Mapping[str, str | int | float] | None,
        headers: Mapping[str, str] | None,
        deadline_s: float,
    ) -> Response:
        started = time.perf_counter()
        url: str | httpx.URL = path
        query: Mapping[str, str | int | float] | None = params
        for _hop in range(_MAX_REDIRECTS + 1):
            request = self._client.build_request(
                "GET", url, params=query, headers=headers, timeout=httpx.Timeout(deadline_s)
            )
            upstream = await self._client.send(request, stream=True)
            try:
                status = upstream.status_code
                location = upstream.headers.get("location")
                if 300 <= status < 400 and self._follow and location:
                    target = upstream.url.join(location)
                    if not _same_origin(upstream.url, target):
                        raise _AttemptError("http_3xx", status)
                    url, query = target, None
                    continue
                if not 200 <= status < 300:
                    raise _AttemptError(
                        _status_outcome(status), status, _retry_after(upstream.headers.get("retry-after"), time.time())
                    )
                body = await self._read_body(upstream)
                return Response(
                    status=status,
                    headers=MappingProxyType({k.lower(): v for k, v in upstream.headers.items()}),
                    body=body,
                    elapsed_s=time.perf_counter() - started,
                )
            finally:
                await upstream.aclose()
        raise _AttemptError("http_3xx", status)

    async def _read_body(self, upstream: httpx.Response) -> bytes:
        """Stream the body, undoing Content-Encoding, and stop as soon as it exceeds the cap."""
        cap = self._max_body
        length = upstream.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > cap:
            raise _AttemptError("too_large", upstream.status_code)
        if upstream.is_stream_consumed:  # built from bytes and already read (httpx.MockTransport in tests)
            if len(upstream.content) > cap:
                raise _AttemptError("too_large", upstream.status_code)
            return upstream.content
        decoder = _BoundedDecoder(upstream.headers.get("content-encoding", ""))
        chunks: list[bytes] = []
        size = 0
        async for raw in upstream.aiter_raw():
            piece = decoder.feed(raw, cap - size + 1)
            size += len(piece)
            if size > cap:
                raise _AttemptError("too_large", upstream.status_code)
            if piece:
                chunks.append(piece)
        tail = decoder.flush()
        size += len(tail)
        if size > cap:
            raise _AttemptError("too_large", upstream.status_code)
        chunks.append(tail)
        return b"".join(chunks)

    # circuit breaker ---------------------------------------------------------------------------

    def _admit(self, endpoint: str) -> bool:
        """Let a call through (True when it is the half-open trial) or raise CircuitOpen."""
        if self._state == "closed":
            return False
        remaining = self._opened_at + self._breaker.reset_after_s - self._clock()
        if self._state == "open" and remaining <= 0:
            self._set_state("half_open")
        if self._state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        self._metrics.observe(self.api, endpoint, "circuit_open", None)
        log.debug(
            "upstream circuit open, failing fast: api=%s endpoint=%s",
            self.api,
            endpoint,
            extra={"api": self.api, "endpoint": endpoint, "outcome": "circuit_open"},
        )
        raise CircuitOpen(self.api, endpoint, "circuit_open", retry_after_s=max(0.0, remaining), attempts=0)

    def _settle(self, success: bool, trial: bool) -> None:
        """Feed one finished call's verdict to the breaker (``trial``: it was the half-open trial)."""
        if trial:
            self._trial_in_flight = False
        if success:
            self._failures = 0
            if self._state != "closed":
                self._set_state("closed")
                log.info(
                    "upstream circuit closed: api=%s base=%s",
                    self.api,
                    self.base,
                    extra={"api": self.api, "base": self.base},
                )
            return
        self._failures += 1
        if trial or (self._state == "closed" and self._failures >= self._breaker.failure_threshold):
            self._opened_at = self._clock()
            self._set_state("open")
            log.warning(
                "upstream circuit opened after %d consecutive failed calls: api=%s base=%s (failing fast for %.3gs)",
                self._failures,
                self.api,
                self.base,
                self._breaker.reset_after_s,
                extra={"api": self.api, "base": self.base},
            )

    def _set_state(self, state: str) -> None:
        self._state = state
        self._metrics.set_circuit(self._token, self.api, self.base, state)

    # helpers -----------------------------------------------------------------------------------

    def _decode(self, decode: Callable[[bytes], Any] | None, body: bytes, endpoint: str, attempts: int) -> Any:
        if decode is None:
            return None
        try:
            return decode(body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(self.api, endpoint, "invalid_body", attempts=attempts) from exc

    def _cache_get(self, key: _CacheKey) -> Response | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, response = entry
        if self._clock() >= expires:
            del self._cache[key]
            return None
        return replace(response, from_cache=True)

    def _cache_put(self, key: _CacheKey, response: Response, ttl_s: float) -> None:
        self._cache.pop(key, None)
        self._cache[key] = (self._clock() + ttl_s, response)
        while len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)

    def _log_failure(self, endpoint: str, failed: _AttemptError, attempt: int) -> None:
        log.warning(
            "upstream call failed: api=%s endpoint=%s outcome=%s status=%s attempt=%d",
            self.api,
            endpoint,
            failed.outcome,
            failed.status,
            attempt,
            extra={
                "api": self.api,
                "endpoint": endpoint,
                "outcome": failed.outcome,
                "status": failed.status,
                "attempt": attempt,
            },
        )


class _BoundedDecoder:
    """Undo ``Content-Encoding`` (identity, gzip, deflate) without ever producing more than asked."""

    def __init__(self, encoding: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip().lower() not in ("", "identity")]
        self._deflate_probe = False
        self._z: Any = None
        if not codings:
            return
        if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
            raise _AttemptError("invalid_body")  # we only advertise gzip and deflate
        if codings[0] == "deflate":
            self._z = zlib.decompressobj()
            self._deflate_probe = True  # some servers send raw deflate without the zlib wrapper
        else:
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def feed(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; returns at most ``limit`` bytes (exactly ``limit`` when more would follow)."""
        if self._z is None:
            return data
        try:
            out: bytes = self._z.decompress(data, limit)
        except zlib.error as exc:
            if not self._deflate_probe:
                raise _AttemptError("invalid_body") from exc
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            self._deflate_probe = False
            return self.feed(data, limit)
        self._deflate_probe = False
        return out

    def flush(self) -> bytes:
        """Whatever the decompressor still holds at the end of the stream."""
        if self._z is None:
            return b""
        try:
            return bytes(self._z.flush())
        except zlib.error as exc:
            raise _AttemptError("invalid_body") from exc


def _decode_json(body: bytes) -> Any:
    return msgspec.json.decode(body)


def _status_outcome(status: int) -> str:
    if status in (401, 403, 404, 429):
        return f"http_{status}"
    return f"http_{status // 100}xx"


def _transport_outcome(exc: httpx.HTTPError) -> str:
    if _ssl_in_chain(exc):
        return "tls_error"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.ProtocolError):
        return "protocol_error"
    if isinstance(exc, httpx.NetworkError):
        return "read_error"
    if isinstance(exc, httpx.DecodingError):
        return "invalid_body"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "invalid_url"
    return "transport_error"


def _ssl_in_chain(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None when absent or garbled."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _same_origin(origin: httpx.URL, target: httpx.URL) -> bool:
    """Same scheme, host and port, or the same host upgraded from http to https."""
    if origin.host != target.host:
        return False
    if origin.scheme == target.scheme:
        return origin.port == target.port
    return origin.scheme == "http" and target.scheme == "https"


def _register_if_sensitive(name: str, value: str) -> None:
    lowered = name.lower()
    if any(word in lowered for word in _SENSITIVE_HEADER_WORDS):
        register_secret(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.isalpha():
            register_secret(credential.strip())


def _ssl_context(verify: bool | str | ssl.SSLContext, cert: tuple[str, str] | None, trust_env: bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif isinstance(verify, str):
        context = (
            ssl.create_default_context(capath=verify)
            if os.path.isdir(verify)
            else ssl.create_default_context(cafile=verify)
        )
    else:
        context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
    if cert is not None:
        context.load_cert_chain(cert[0], cert[1])
    return context


class _RedactUrlFilter(logging.Filter):
    """httpx logs every request's full URL at INFO; drop userinfo and query strings from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(_redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


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


def _redact_url(url: httpx.URL) -> str:
    text = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"
    return text + ("?…" if url.query else "")


def _install_httpx_log_filter() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrlFilter) for f in logger.filters):
        logger.addFilter(_RedactUrlFilter())


_install_httpx_log_filter()

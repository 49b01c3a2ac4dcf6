"""The resilient client for one upstream base URL (see the package docstring for what it guarantees)."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType, TracebackType
from typing import Any, Final

import aiohttp
import httpx
import msgspec
import yarl

from inferwatch.shared.http.body import read_capped, read_decoded, retry_after_s, same_origin, too_long
from inferwatch.shared.http.breaker import Admission, CircuitBreaker, CircuitState
from inferwatch.shared.http.errors import AttemptError, CircuitOpen, UpstreamError
from inferwatch.shared.http.outcomes import (
    BREAKER_FAILURES,
    RETRYABLE_TRANSPORT,
    Outcome,
    aiohttp_outcome,
    status_outcome,
)
from inferwatch.shared.http.outcomes import transport_outcome as _transport_outcome
from inferwatch.shared.http.policy import CallPolicy, ClientSeams
from inferwatch.shared.http.redact import register_if_sensitive
from inferwatch.shared.http.stats import UpstreamMetrics
from inferwatch.shared.log import register_secret
from inferwatch.shared.tls import TlsPolicy

log = logging.getLogger("inferwatch.http")

_MAX_REDIRECTS: Final = 5
_MAX_CACHED_URLS: Final = 64  # distinct paths whose parsed URL a client keeps

Params = Mapping[str, str | int | float]
_CacheKey = tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
_DEFAULT_POLICY: Final = CallPolicy()
_VERIFY: Final = TlsPolicy()
_REAL_WORLD: Final = ClientSeams()


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


@dataclass(frozen=True)
class _Call:
    """One call's request, as every attempt of it sends it."""

    path: str
    endpoint: str
    params: Params | None
    headers: Mapping[str, str] | None
    deadline_s: float


class UpstreamClient:
    """A resilient HTTP client for one upstream base URL.

    Args:
        api: upstream kind, used as the ``api`` label and in errors (``vllm``, ``litellm``…).
        base_url: ``http(s)://host:port[/prefix]``; userinfo in it becomes basic auth (and is stripped
            from the URL so it never shows up in any log).
        metrics: where to record calls (``UpstreamMetrics.of(registry)``).
        headers: sent with every request (e.g. ``Authorization``); sensitive values are registered with
            :func:`inferwatch.shared.log.register_secret` so the service's log formatters redact them too.
        auth: an ``httpx.Auth`` or a ``(user, password)`` pair for basic auth.
        policy: limits, retries, breaker, cache and redirects.
        tls: how servers are verified (default: verification against the system and certifi CAs).
        seams: clock, sleep, randomness and transport (tests replace them).

    Requests go over aiohttp (its C HTTP parser costs about a sixth of httpx's CPU per request, see
    bench/bench_http_client.py); httpx carries them only when a test injects ``seams.transport`` or a caller
    passes an ``httpx.Auth`` flow other than basic auth. Either way the guarantees above are this class's own.
    """

    def __init__(
        self,
        api: str,
        base_url: str,
        *,
        metrics: UpstreamMetrics,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        policy: CallPolicy = _DEFAULT_POLICY,
        tls: TlsPolicy = _VERIFY,
        seams: ClientSeams = _REAL_WORLD,
    ) -> None:
        url, auth, basic = _split_userinfo(api, base_url, auth)
        merged = {"accept-encoding": "gzip, deflate", "user-agent": "inferwatch"}
        for name, value in (headers or {}).items():
            merged[name.lower()] = value
            register_if_sensitive(name, value)
        self.api = api
        self.base = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"
        # an httpx.Auth flow other than basic auth (or a test's transport) keeps the httpx wire
        self._over_httpx = seams.transport is not None or (auth is not None and basic is None)
        self._aio_headers = dict(merged)
        if basic is not None:
            self._aio_headers.setdefault("authorization", basic)
        # httpx merges a path onto the base URL's path (which it makes end in "/"); the aiohttp wire does the same
        self._prefix = f"{self.base}{url.raw_path.decode('ascii').split('?', 1)[0].rstrip('/')}/"
        self._aio_urls: dict[str, yarl.URL] = {}
        self._aio: aiohttp.ClientSession | None = None
        self._ssl = tls.context()
        self._metrics = metrics
        self._policy = policy
        self._seams = seams
        self._cache: OrderedDict[_CacheKey, tuple[float, Response]] = OrderedDict()
        self._urls: dict[str, httpx.URL] = {}
        self._breaker = CircuitBreaker(policy.breaker, seams.clock, self._circuit_changed)
        self._client = httpx.AsyncClient(
            base_url=url,
            headers=merged,
            auth=auth,
            timeout=httpx.Timeout(policy.limits.timeout_s),
            verify=self._ssl if seams.transport is None else True,
            transport=seams.transport,
            follow_redirects=False,
            limits=httpx.Limits(keepalive_expiry=policy.limits.keepalive_s),
        )
        metrics.set_circuit(self, api, self.base, CircuitState.CLOSED)

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
        """Close the connection pool and drop this client from the circuit states."""
        self._metrics.set_circuit(self, self.api, self.base, None)
        await self._client.aclose()
        if self._aio is not None:
            await self._aio.close()

    def circuit_state(self) -> CircuitState:
        """``closed``, ``half_open`` (open, but the next call is let through as a trial) or ``open``."""
        return self._breaker.state

    def cached(self, path: str, *, params: Params | None = None, headers: Mapping[str, str] | None = None) -> bool:
        """Whether a cached ``get``/``get_json`` of ``path`` would be answered from the TTL cache now (no I/O).

        A caller awaits such a call inline instead of scheduling it as a task of its own.
        """
        entry = self._cache.get(
            _cache_key(_Call(path=path, endpoint=path, params=params, headers=headers, deadline_s=0.0))
        )
        return entry is not None and self._seams.clock() < entry[0]

    async def get(
        self,
        path: str,
        *,
        endpoint: str | None = None,
        params: Params | None = None,
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
        call = self._call(path, endpoint, params, headers, timeout_s)
        response, _ = await self._fetch(call, cache_ttl_s, decode=None)
        return response

    async def get_json(
        self,
        path: str,
        *,
        endpoint: str | None = None,
        params: Params | None = None,
        cache_ttl_s: float | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Like :meth:`get`, decoding the body as JSON with msgspec.

        Raises:
            UpstreamError: as :meth:`get`, or with outcome ``invalid_body`` when the body is not JSON
                (such a response is never cached).
        """
        call = self._call(path, endpoint, params, headers, timeout_s)
        _, value = await self._fetch(call, cache_ttl_s, decode=msgspec.json.decode)
        return value

    def _call(
        self,
        path: str,
        endpoint: str | None,
        params: Params | None,
        headers: Mapping[str, str] | None,
        timeout_s: float | None,
    ) -> _Call:
        for name, value in (headers or {}).items():
            register_if_sensitive(name, value)
        return _Call(
            path=path,
            endpoint=endpoint if endpoint is not None else path.split("?", 1)[0],
            params=params,
            headers=headers,
            deadline_s=timeout_s if timeout_s is not None else self._policy.limits.timeout_s,
        )

    async def _fetch(
        self, call: _Call, cache_ttl_s: float | None, decode: Callable[[bytes], Any] | None
    ) -> tuple[Response, Any]:
        key: _CacheKey | None = None
        if cache_ttl_s is not None and cache_ttl_s > 0:
            key = _cache_key(call)
            cached = self._cache_get(key)
            if cached is not None:
                self._metrics.cache_hit(self.api, call.endpoint)
                return cached, self._decode_cached(decode, cached.body, call.endpoint)
        admission = self._admit(call.endpoint)
        attempts = 1 if admission is Admission.TRIAL else self._policy.retry.attempts
        try:
            response, value = await self._attempts(call, attempts, decode)
        except UpstreamError as exc:
            self._breaker.settle(exc.outcome not in BREAKER_FAILURES, admission)
            raise
        except BaseException:  # cancelled: release a half-open trial without judging the upstream
            self._breaker.abandon(admission)
            raise
        self._breaker.settle(True, admission)
        if key is not None and cache_ttl_s is not None:
            self._cache_put(key, response, cache_ttl_s)
        return response, value

    async def _attempts(
        self, call: _Call, attempts: int, decode: Callable[[bytes], Any] | None
    ) -> tuple[Response, Any]:
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                self._metrics.retried(self.api, call.endpoint)
            started = time.perf_counter()
            try:
                response = await self._attempt(call)
                value = self._decode_fresh(decode, response)
            except AttemptError as failed:
                self._metrics.observe(self.api, call.endpoint, failed.outcome, time.perf_counter() - started)
                delay = self._retry_delay(failed, attempt, attempts)
                if delay is None:
                    self._log_failure(call.endpoint, failed, attempt)
                    raise UpstreamError(
                        self.api,
                        call.endpoint,
                        failed.outcome,
                        status=failed.status,
                        retry_after_s=failed.retry_after_s,
                        attempts=attempt,
                    ) from failed.__cause__
                self._log_retry(call.endpoint, failed, attempt, delay)
                await self._seams.sleep(delay)
                continue
            self._metrics.observe(self.api, call.endpoint, Outcome.OK, time.perf_counter() - started)
            return response, value

    def _retry_delay(self, failed: AttemptError, attempt: int, attempts: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        retry = self._policy.retry
        if failed.status is not None:
            retryable = failed.status in retry.retry_on_status
        else:
            retryable = failed.outcome in RETRYABLE_TRANSPORT
        if not retryable or attempt >= attempts:
            return None
        if failed.retry_after_s is not None:
            # an upstream wanting a longer pause than we wait inline makes the caller reschedule
            return failed.retry_after_s if failed.retry_after_s <= retry.max_delay_s else None
        return retry.backoff_s(attempt, self._seams.rand())

    async def _attempt(self, call: _Call) -> Response:
        """One attempt under one overall deadline; every failure becomes ``AttemptError``."""
        try:
            async with asyncio.timeout(call.deadline_s):
                return await (self._exchange(call) if self._over_httpx else self._exchange_aiohttp(call))
        except AttemptError:
            raise
        except httpx.InvalidURL as exc:
            raise AttemptError(Outcome.INVALID_URL) from exc
        except TimeoutError as exc:  # our overall deadline (before OSError: TimeoutError is one)
            raise AttemptError(Outcome.TIMEOUT) from exc
        except httpx.TimeoutException as exc:
            raise AttemptError(Outcome.TIMEOUT) from exc
        except httpx.HTTPError as exc:
            raise AttemptError(_transport_outcome(exc)) from exc
        except aiohttp.ClientError as exc:
            raise AttemptError(aiohttp_outcome(exc)) from _without_url(exc)
        except ssl.SSLError as exc:
            raise AttemptError(Outcome.TLS_ERROR) from exc
        except OSError as exc:
            raise AttemptError(Outcome.CONNECT_ERROR) from exc

    async def _exchange(self, call: _Call) -> Response:
        started = time.perf_counter()
        url: str | httpx.URL = call.path if call.params else self._url(call.path)
        query: Params | None = call.params
        status = 0
        timeout = httpx.Timeout(call.deadline_s)
        for _hop in range(_MAX_REDIRECTS + 1):
            request = self._client.build_request("GET", url, params=query, headers=call.headers, timeout=timeout)
            upstream = await self._client.send(request, stream=True)
            try:
                status = upstream.status_code
                target = self._redirect_target(upstream)
                if target is not None:
                    url, query = target, None
                    continue
                if not 200 <= status < 300:
                    wait = retry_after_s(upstream.headers.get("retry-after"), time.time())
                    raise AttemptError(status_outcome(status), status, wait)
                body = await read_capped(upstream, self._policy.limits.max_body_bytes)
                return Response(
                    status=status,
                    headers=MappingProxyType({k.lower(): v for k, v in upstream.headers.items()}),
                    body=body,
                    elapsed_s=time.perf_counter() - started,
                )
            finally:
                await upstream.aclose()
        raise AttemptError(Outcome.HTTP_3XX, status)

    async def _exchange_aiohttp(self, call: _Call) -> Response:
        started = time.perf_counter()
        session = self._session()
        url = self._aio_url(call.path)
        query: Params | None = call.params
        status = 0
        for _hop in range(_MAX_REDIRECTS + 1):
            async with session.get(url, params=query, headers=call.headers, allow_redirects=False) as upstream:
                status = upstream.status
                target = self._aio_redirect_target(upstream)
                if target is not None:
                    url, query = target, None
                    continue
                if not 200 <= status < 300:
                    wait = retry_after_s(upstream.headers.get("retry-after"), time.time())
                    raise AttemptError(status_outcome(status), status, wait)
                cap = self._policy.limits.max_body_bytes
                if too_long(upstream.headers.get("content-length"), cap):
                    raise AttemptError(Outcome.TOO_LARGE, status)
                encoding = upstream.headers.get("content-encoding", "")
                body = await read_decoded(upstream.content.iter_any(), encoding, cap, status)
                headers: dict[str, str] = {}
                for name, value in upstream.headers.items():
                    name = name.lower()
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
                return Response(
                    status=status,
                    headers=MappingProxyType(headers),
                    body=body,
                    elapsed_s=time.perf_counter() - started,
                )
        raise AttemptError(Outcome.HTTP_3XX, status)

    def _session(self) -> aiohttp.ClientSession:
        """The aiohttp session, made at the first request (aiohttp wants a running event loop for it)."""
        if self._aio is None:
            self._aio = aiohttp.ClientSession(
                headers=self._aio_headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl, keepalive_timeout=self._policy.limits.keepalive_s),
                timeout=aiohttp.ClientTimeout(total=None),  # the attempt's own deadline bounds everything
                auto_decompress=False,  # read_decoded undoes gzip/deflate with the body cap applied
                cookie_jar=aiohttp.DummyCookieJar(),  # the upstreams we read are stateless APIs
                trust_env=False,  # like Prometheus: no proxy or .netrc from the environment
            )
        return self._aio

    def _aio_url(self, path: str) -> yarl.URL:
        """The absolute URL of ``path`` under the base URL, parsed once per path."""
        url = self._aio_urls.get(path)
        if url is None:
            if len(self._aio_urls) >= _MAX_CACHED_URLS:
                self._aio_urls.clear()
            try:
                url = yarl.URL(self._prefix + path.lstrip("/"))
            except ValueError:  # (its text would repeat the path, query included)
                raise AttemptError(Outcome.INVALID_URL) from None
            self._aio_urls[path] = url
        return url

    def _aio_redirect_target(self, upstream: aiohttp.ClientResponse) -> yarl.URL | None:
        """As :meth:`_redirect_target`, on the aiohttp wire."""
        location = upstream.headers.get("location")
        if not (300 <= upstream.status < 400 and self._policy.follow_redirects and location):
            return None
        try:
            target = upstream.url.join(yarl.URL(location))
        except ValueError:  # as httpx's InvalidURL for the same Location
            raise AttemptError(Outcome.INVALID_URL, upstream.status) from None
        if not same_origin(upstream.url, target):
            raise AttemptError(Outcome.HTTP_3XX, upstream.status)
        return target

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of ``path`` under the base URL, parsed once (a scraper asks for the same few paths
        every interval; httpx parses a relative path again at every request, a third of building one)."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            url = self._urls[path] = self._client.build_request("GET", path).url
        return url

    def _redirect_target(self, upstream: httpx.Response) -> httpx.URL | None:
        """Where a followed redirect leads (None: not a redirect we follow); a cross-origin one fails."""
        location = upstream.headers.get("location")
        if not (300 <= upstream.status_code < 400 and self._policy.follow_redirects and location):
            return None
        target = upstream.url.join(location)
        if not same_origin(upstream.url, target):
            raise AttemptError(Outcome.HTTP_3XX, upstream.status_code)
        return target

    # circuit breaker ---------------------------------------------------------------------------

    def _admit(self, endpoint: str) -> Admission:
        """Let a call through (the admission to settle later) or raise CircuitOpen."""
        admission = self._breaker.admit()
        if admission is not Admission.REFUSED:
            return admission
        self._metrics.observe(self.api, endpoint, Outcome.CIRCUIT_OPEN, None)
        log.debug(
            "upstream circuit open, failing fast: api=%s endpoint=%s",
            self.api,
            endpoint,
            extra={"api": self.api, "endpoint": endpoint, "outcome": Outcome.CIRCUIT_OPEN.value},
        )
        wait = max(0.0, self._breaker.seconds_until_trial())
        raise CircuitOpen(self.api, endpoint, Outcome.CIRCUIT_OPEN, retry_after_s=wait, attempts=0)

    def _circuit_changed(self, state: CircuitState, failures: int) -> None:
        self._metrics.set_circuit(self, self.api, self.base, state)
        context = {"api": self.api, "base": self.base}
        if state is CircuitState.CLOSED:
            log.info("upstream circuit closed: api=%s base=%s", self.api, self.base, extra=context)
        elif state is CircuitState.OPEN:
            log.warning(
                "upstream circuit opened after %d consecutive failed calls: api=%s base=%s (failing fast for %.3gs)",
                failures,
                self.api,
                self.base,
                self._policy.breaker.reset_after_s,
                extra=context,
            )

    # helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _decode_fresh(decode: Callable[[bytes], Any] | None, response: Response) -> Any:
        if decode is None:
            return None
        try:
            return decode(response.body)
        except msgspec.DecodeError as exc:
            raise AttemptError(Outcome.INVALID_BODY, response.status) from exc

    def _decode_cached(self, decode: Callable[[bytes], Any] | None, body: bytes, endpoint: str) -> Any:
        if decode is None:
            return None
        try:
            return decode(body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(self.api, endpoint, Outcome.INVALID_BODY, attempts=0) from exc

    def _cache_get(self, key: _CacheKey) -> Response | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, response = entry
        if self._seams.clock() >= expires:
            del self._cache[key]
            return None
        return replace(response, from_cache=True)

    def _cache_put(self, key: _CacheKey, response: Response, ttl_s: float) -> None:
        self._cache.pop(key, None)
        self._cache[key] = (self._seams.clock() + ttl_s, response)
        while len(self._cache) > self._policy.cache.max_entries:
            self._cache.popitem(last=False)

    def _log_failure(self, endpoint: str, failed: AttemptError, attempt: int) -> None:
        log.warning(
            "upstream call failed: api=%s endpoint=%s outcome=%s status=%s attempt=%d",
            self.api,
            endpoint,
            failed.outcome.value,
            failed.status,
            attempt,
            extra=self._log_context(endpoint, failed, attempt),
        )

    def _log_retry(self, endpoint: str, failed: AttemptError, attempt: int, delay: float) -> None:
        log.info(
            "upstream attempt failed, retrying in %.3fs: api=%s endpoint=%s outcome=%s status=%s attempt=%d",
            delay,
            self.api,
            endpoint,
            failed.outcome.value,
            failed.status,
            attempt,
            extra=self._log_context(endpoint, failed, attempt),
        )

    def _log_context(self, endpoint: str, failed: AttemptError, attempt: int) -> dict[str, object]:
        return {
            "api": self.api,
            "endpoint": endpoint,
            "outcome": failed.outcome.value,
            "status": failed.status,
            "attempt": attempt,
        }


def _split_userinfo(
    api: str, base_url: str, auth: httpx.Auth | tuple[str, str] | None
) -> tuple[httpx.URL, httpx.Auth | None, str | None]:
    """The base URL without userinfo, the auth to use (userinfo becomes basic auth unless ``auth`` is given) and,
    for basic auth given as a pair or as userinfo, its ``Authorization`` header value (registered as a secret)."""
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
    basic: str | None = None
    if isinstance(auth, tuple):
        register_secret(auth[1])
        basic = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")  # as httpx.BasicAuth
        register_secret(basic)
        register_secret(basic.partition(" ")[2])
        auth = httpx.BasicAuth(auth[0], auth[1])
    return url, auth, basic


class WireFaultError(Exception):
    """An aiohttp failure retold without its URL (the chained cause of an ``UpstreamError``)."""


def _without_url(exc: aiohttp.ClientError) -> BaseException:
    """``exc``, or its kind and parser message alone when its text would show the request URL (query included)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return WireFaultError(f"{type(exc).__name__}: {exc.message}")
    if isinstance(exc, aiohttp.InvalidURL):
        return WireFaultError(type(exc).__name__)
    return exc


def _cache_key(call: _Call) -> _CacheKey:
    return (
        call.path,
        tuple(sorted((k, str(v)) for k, v in (call.params or {}).items())),
        tuple(sorted((k.lower(), v) for k, v in (call.headers or {}).items())),
    )

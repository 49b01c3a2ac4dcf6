"""The resilient upstream HTTP client every collector uses to talk to vLLM, LiteLLM, Langfuse, EPP….

One :class:`UpstreamClient` per upstream base URL gives:

* a hard per-attempt deadline (connect + headers + the whole streamed body), so a server that hangs or
  dribbles bytes forever costs at most ``Limits.timeout_s`` per attempt;
* a response size cap enforced while streaming (and before, from ``Content-Length``), applied to the
  *decoded* body with a bounded decompressor, so neither a huge body nor a gzip bomb is ever buffered
  beyond the cap plus one chunk;
* retries with exponential backoff and jitter for transport failures and ``RetryPolicy.retry_on_status``,
  honouring ``Retry-After``;
* a circuit breaker (closed → open → half-open → closed);
* an optional per-call TTL cache of successful responses;
* call statistics in :class:`UpstreamMetrics` (exported on ``/metrics`` and in ``UpstreamCallStats``) and one
  WARNING log line per failed call;
* TLS verification by :class:`~inferwatch.shared.tls.TlsPolicy` (on unless explicitly opted out).

Every failure has an :class:`Outcome` from a closed set, which services compare by name.

Secrets (auth headers, basic-auth passwords, URL userinfo, query strings) never reach exception messages,
log lines or metric labels: errors and logs carry only the api name, the caller's bounded endpoint
template, the outcome, the HTTP status and the attempt count.

Modules: ``client`` (the client), ``policy`` (its settings), ``breaker``, ``outcomes``, ``errors``,
``stats`` (what it records), ``body`` (reading answers safely), ``redact`` (keeping secrets out).
"""

from inferwatch.shared.http.breaker import CircuitState
from inferwatch.shared.http.client import Response, UpstreamClient
from inferwatch.shared.http.errors import CircuitOpen, UpstreamError
from inferwatch.shared.http.outcomes import UNREACHABLE, Outcome
from inferwatch.shared.http.policy import BreakerPolicy, CachePolicy, CallPolicy, ClientSeams, Limits, RetryPolicy
from inferwatch.shared.http.redact import install_httpx_log_filter, strip_credentials
from inferwatch.shared.http.stats import EndpointStats, UpstreamMetrics

__all__ = [
    "UNREACHABLE",
    "BreakerPolicy",
    "CachePolicy",
    "CallPolicy",
    "CircuitOpen",
    "CircuitState",
    "ClientSeams",
    "EndpointStats",
    "Limits",
    "Outcome",
    "Response",
    "RetryPolicy",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamMetrics",
    "strip_credentials",
]

install_httpx_log_filter()

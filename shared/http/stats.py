"""What every upstream client records about its calls, per registry: one store, read two ways.

The clients record into :class:`UpstreamMetrics`; the service's ``/metrics`` exports it as Prometheus families
(it is a registered collector) and its heartbeat publishes it as ``UpstreamCallStats`` (via :meth:`calls` and
:meth:`circuit_states`), so both always say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from inferwatch.shared.http.breaker import CircuitState
from inferwatch.shared.http.outcomes import Outcome

_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_Route = tuple[str, str]  # (api, endpoint)


@dataclass(frozen=True)
class EndpointStats:
    """Cumulative calls to one (api, endpoint).

    Attributes:
        api: upstream kind.
        endpoint: bounded route template.
        outcomes: calls by outcome (per network attempt, plus one ``circuit_open`` per call failed fast).
        duration_sum_s: seconds spent in network attempts.
    """

    api: str
    endpoint: str
    outcomes: dict[Outcome, float]
    duration_sum_s: float


@dataclass
class _Durations:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(_DURATION_BUCKETS) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        index = next((i for i, bound in enumerate(_DURATION_BUCKETS) if seconds <= bound), len(_DURATION_BUCKETS))
        self.buckets[index] += 1
        self.total_s += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0, []
        for bound, count in zip((*map(repr, _DURATION_BUCKETS), "+Inf"), self.buckets, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


_SHARED: WeakKeyDictionary[CollectorRegistry, UpstreamMetrics] = WeakKeyDictionary()


class UpstreamMetrics(Collector):
    """Every upstream call of one process, recorded once, exported as these families.

    ``endpoint`` is always the caller's bounded route template, never a raw URL:

    * ``inferwatch_upstream_requests_total{api,endpoint,outcome}``: one per attempt sent to the network
      (outcome ``ok`` on success), plus one ``circuit_open`` per call failed fast by an open breaker.
      Cache hits are not requests: they count in ``cache_hits_total`` only.
    * ``inferwatch_upstream_request_duration_seconds{api,endpoint}``: histogram, one per network attempt.
    * ``inferwatch_upstream_circuit_state{api}``: 0 closed, 1 half-open, 2 open; with several clients for
      the same api (one per vLLM target) it shows the worst of them (:meth:`circuit_states` has each).
    * ``inferwatch_upstream_retries_total{api,endpoint}``: attempts after the first.
    * ``inferwatch_upstream_cache_hits_total{api,endpoint}``.

    Get the one of a registry with :meth:`of`, so every client of a process records into the same store.
    """

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, Outcome], float] = {}
        self._durations: dict[_Route, _Durations] = {}
        self._retries: dict[_Route, float] = {}
        self._cache_hits: dict[_Route, float] = {}
        self._circuits: dict[str, dict[object, tuple[str, CircuitState]]] = {}  # api -> client -> (base, state)

    @classmethod
    def of(cls, registry: CollectorRegistry) -> UpstreamMetrics:
        """The store of ``registry``, created and registered on first use."""
        metrics = _SHARED.get(registry)
        if metrics is None:
            metrics = _SHARED[registry] = cls()
            registry.register(metrics)
        return metrics

    @staticmethod
    def find(registry: CollectorRegistry) -> UpstreamMetrics | None:
        """The store of ``registry`` if any client ever used it."""
        return _SHARED.get(registry)

    # recording -------------------------------------------------------------------------------

    def observe(self, api: str, endpoint: str, outcome: Outcome, duration_s: float | None) -> None:
        """Count one call attempt (``duration_s`` None when no network I/O happened)."""
        key = (api, endpoint, outcome)
        self._requests[key] = self._requests.get(key, 0.0) + 1
        if duration_s is not None:
            self._durations.setdefault((api, endpoint), _Durations()).observe(duration_s)

    def retried(self, api: str, endpoint: str) -> None:
        """Count one retry."""
        self._retries[api, endpoint] = self._retries.get((api, endpoint), 0.0) + 1

    def cache_hit(self, api: str, endpoint: str) -> None:
        """Count one cache hit."""
        self._cache_hits[api, endpoint] = self._cache_hits.get((api, endpoint), 0.0) + 1

    def set_circuit(self, client: object, api: str, base: str, state: CircuitState | None) -> None:
        """Record one client's breaker state (``None`` forgets the client)."""
        clients = self._circuits.setdefault(api, {})
        if state is None:
            clients.pop(client, None)
        else:
            clients[client] = (base, state)

    # reading ---------------------------------------------------------------------------------

    def calls(self) -> list[EndpointStats]:
        """Cumulative calls per (api, endpoint), sorted."""
        by_route: dict[_Route, dict[Outcome, float]] = {}
        for (api, endpoint, outcome), count in self._requests.items():
            by_route.setdefault((api, endpoint), {})[outcome] = count
        return [
            EndpointStats(
                api=api,
                endpoint=endpoint,
                outcomes=outcomes,
                duration_sum_s=self._durations[api, endpoint].total_s if (api, endpoint) in self._durations else 0.0,
            )
            for (api, endpoint), outcomes in sorted(by_route.items())
        ]

    def circuit_states(self) -> dict[str, CircuitState]:
        """Breaker state per upstream, keyed ``"api base"`` (base is ``scheme://host:port``, no secrets).

        Several live clients of one upstream (different path prefixes) show the worst of them.
        """
        states: dict[str, CircuitState] = {}
        for api, clients in self._circuits.items():
            for base, state in clients.values():
                key = f"{api} {base}"
                if key not in states or state.gauge > states[key].gauge:
                    states[key] = state
        return states

    def collect(self) -> Iterator[Metric]:
        """The Prometheus families (see the class docstring)."""
        requests = CounterMetricFamily(
            "inferwatch_upstream_requests",
            "Upstream HTTP calls by outcome (per attempt).",
            labels=["api", "endpoint", "outcome"],
        )
        for (api, endpoint, outcome), count in list(self._requests.items()):
            requests.add_metric([api, endpoint, outcome.value], count)
        duration = HistogramMetricFamily(
            "inferwatch_upstream_request_duration_seconds",
            "Duration of upstream HTTP attempts.",
            labels=["api", "endpoint"],
        )
        for (api, endpoint), durations in list(self._durations.items()):
            duration.add_metric([api, endpoint], durations.cumulative(), durations.total_s)
        circuit = GaugeMetricFamily(
            "inferwatch_upstream_circuit_state",
            "Upstream circuit breaker state (0 closed, 1 half-open, 2 open; worst client).",
            labels=["api"],
        )
        for api, clients in list(self._circuits.items()):
            circuit.add_metric([api], max((state.gauge for _, state in clients.values()), default=0))
        retries = CounterMetricFamily(
            "inferwatch_upstream_retries", "Upstream HTTP attempts after the first.", labels=["api", "endpoint"]
        )
        for (api, endpoint), count in list(self._retries.items()):
            retries.add_metric([api, endpoint], count)
        cache_hits = CounterMetricFamily(
            "inferwatch_upstream_cache_hits", "Upstream calls answered from the TTL cache.", labels=["api", "endpoint"]
        )
        for (api, endpoint), count in list(self._cache_hits.items()):
            cache_hits.add_metric([api, endpoint], count)
        yield from (requests, duration, circuit, retries, cache_hits)

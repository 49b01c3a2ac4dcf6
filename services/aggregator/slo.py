"""Service-level objectives per model: one definition file, evaluated on the NATS path and compiled to PromQL.

The definition (``rules/slos.yaml``, schema below) is the single declaration of every SLO. From it follow:

* here, on the NATS path: the good and total request counts of each SLO per model (vLLM ``model_name``) or
  LiteLLM route (``model_group``), windowed from the snapshots' counters and histogram buckets; the error ratio
  and burn rate per window; the Workbook's multiwindow, multi-burn-rate alerts, through the aggregator's alert path
  (NATS, Alertmanager, status page); ``inferwatch_slo_*`` gauges (error budget remaining, burn rate per window);
* `prometheus_rules`: the same SLOs as Prometheus recording rules (the error ratio per window) and alerts
  (``scripts/slo_rules.py --write`` writes them to ``deploy/prometheus/rules/slo.rules.yml``).

Schema (Sloth-like: one file, a list of SLOs, the alerting windows once for all)::

    budget_window: 30d                 # the error budget's period
    burn_rate_alerts:                  # the Workbook's pairs; an alert fires while both windows burn faster
      - {long: 1h, short: 5m, factor: 14.4, action: page}
      - {long: 6h, short: 30m, factor: 6, action: page}
      - {long: 3d, short: 6h, factor: 1, action: ticket}
    slos:
      - name: vllm-ttft                # [a-z0-9-]
        source: vllm                   # vllm (per model_name) | litellm (per model_group)
        sli: ttft                      # availability | ttft | e2e_latency | inter_token_latency
        objective: 0.99                # share of good requests, 0 < objective < 1
        threshold_s: 2.5               # latency SLIs: a request is good when it took at most this long
        models: []                     # only these models / routes; empty: every one (one SLO series each)
        good: [stop, length]           # availability: the finished reasons / status classes that count as good

A latency threshold must be a bucket bound of the histogram in every version we read (`BUCKET_BOUNDS`), since a
histogram cannot tell what happened between two bounds: anything else is refused, naming the nearest bounds. A
snapshot whose histogram lacks the bound anyway (an unknown version) contributes nothing to the SLO and is counted.

Windowed counts: each contributing series (one vLLM engine, one LiteLLM model group of one proxy) adds its growth
since its previous snapshot to a running total per SLO series (a reset counts from zero, as ``increase()`` does), and
the SLO series keeps timestamped samples of those totals. The counts over a window are the growth between the first
sample inside the window and the newest, which is the ratio Prometheus' ``rate()`` gives (its extrapolation scales
good and total alike). Memory is bounded: samples are thinned to at least a 60th of the smallest window they still
serve, so a series holds a few hundred samples whatever the snapshot rate, and samples older than the longest
window are dropped.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from inferwatch.contracts.alert import Alert, Severity
from inferwatch.contracts.base import Event, Histogram
from inferwatch.contracts.litellm import LitellmProxySnapshot, ModelUsage
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot
from inferwatch.services.aggregator.domains import litellm as litellm_domain
from inferwatch.services.aggregator.domains import vllm as vllm_domain
from inferwatch.services.aggregator.render import Family, FieldFamily, SeriesWriter, fmt_value, label_block
from inferwatch.services.aggregator.rule_engine import (
    COLLECTOR,
    counter_growth,
    fingerprint,
    parse_duration,
    read_listing,
)
from inferwatch.shared.upstream_buckets import (
    LITELLM_LATENCY,
    V0_E2E,
    V0_TPOT,
    V0_TTFT,
    V1_ITL,
    V1_LATENCY,
    V1_TTFT,
)

log = logging.getLogger("inferwatch.aggregator.slo")

DEFAULT_SLO_FILE = Path(__file__).with_name("rules") / "slos.yaml"
ALERT_NAME = "SloErrorBudgetBurn"
RUNBOOK_URL = "deploy/README.md#sloerrorbudgetburn"

Source = Literal["vllm", "litellm"]
Sli = Literal["availability", "ttft", "e2e_latency", "inter_token_latency"]
Action = Literal["page", "ticket"]
SEVERITY: dict[Action, Severity] = {"page": "critical", "ticket": "warning"}

KEY_LABEL: dict[Source, str] = {"vllm": "model_name", "litellm": "model_group"}
"""The label an SLO series is kept per: the model (vLLM) or the route (LiteLLM model group)."""

# The families the aggregator exports the sources' contract fields as: the PromQL copy reads the same series.
EXPORTED: dict[Source, tuple[FieldFamily, ...]] = {
    "vllm": vllm_domain.ENGINE_FAMILIES,
    "litellm": litellm_domain.USAGE_FAMILIES,
}

# The contract field each SLI reads, per source.
FIELDS: dict[Source, dict[Sli, str]] = {
    "vllm": {
        "availability": "request_success_total",
        "ttft": "time_to_first_token_seconds",
        "e2e_latency": "e2e_request_latency_seconds",
        "inter_token_latency": "inter_token_latency_seconds",
    },
    "litellm": {
        "availability": "requests_total",
        "ttft": "time_to_first_token_seconds",
        "e2e_latency": "request_latency_seconds",
    },
}
DEFAULT_GOOD: dict[Source, tuple[str, ...]] = {
    "vllm": ("stop", "length"),  # abort, error, repetition… are the server's failures
    "litellm": ("2xx", "4xx", "success"),  # a 4xx is the client's mistake, not the route's; none = refused
}


def _common(*generations: tuple[float, ...]) -> tuple[float, ...]:
    """The bucket bounds every one of ``generations`` has, ascending."""
    return tuple(sorted(set(generations[0]).intersection(*generations[1:])))


BUCKET_BOUNDS: dict[Source, dict[Sli, tuple[float, ...]]] = {
    # the bounds vLLM V0 (0.5, 0.6) and V1 (0.8 → 0.33) share
    "vllm": {
        "ttft": _common(V0_TTFT, V1_TTFT),
        "inter_token_latency": _common(V0_TPOT, V1_ITL),
        "e2e_latency": _common(V0_E2E, V1_LATENCY),
    },
    "litellm": {"ttft": LITELLM_LATENCY, "e2e_latency": LITELLM_LATENCY},
}

THINNING = 60  # default samples kept per window (at least window / THINNING apart)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_PROM_DURATION = re.compile(r"[1-9][0-9]*(ms|s|m|h|d)")

P = "inferwatch_slo_"
OBJECTIVE = Family(P + "objective_ratio", "gauge", "The SLO's objective: the share of requests that must be good.")
BUDGET_REMAINING = Family(
    P + "error_budget_remaining_ratio",
    "gauge",
    "Share of the SLO's error budget left over its budget window (1: untouched, 0: spent, below 0: overspent), "
    "per model or route.",
    "ratio",
)
BURN_RATE = Family(
    P + "burn_rate",
    "gauge",
    "How fast the SLO burns its error budget over the window (1: exactly the budget over the budget window), "
    "per model or route.",
)
UNREADABLE = Family(
    P + "unreadable_series",
    "counter",
    "Snapshots whose histogram had no bucket at the SLO's threshold (an unknown version), by SLO.",
)


class SloError(ValueError):
    """The SLO file or one SLO in it is invalid (the message names which and what is wrong)."""


@dataclass(frozen=True)
class BurnRateAlert:
    """One pair of windows of the Workbook's multiwindow, multi-burn-rate alerts."""

    long: str
    short: str
    factor: float
    action: Action

    @property
    def long_s(self) -> float:
        """The long window in seconds."""
        return parse_duration(self.long, "burn_rate_alerts")

    @property
    def short_s(self) -> float:
        """The short window in seconds."""
        return parse_duration(self.short, "burn_rate_alerts")

    @property
    def window(self) -> str:
        """The pair as it appears in the ``window`` label: ``1h/5m``."""
        return f"{self.long}/{self.short}"


@dataclass(frozen=True)
class Slo:
    """One objective (see the module docstring for the keys)."""

    name: str
    source: Source
    sli: Sli
    objective: float
    threshold_s: float = 0.0
    models: tuple[str, ...] = ()
    good: tuple[str, ...] = ()
    description: str = ""

    @property
    def budget(self) -> float:
        """The error budget: the share of requests allowed to be bad."""
        return 1.0 - self.objective

    @property
    def key_label(self) -> str:
        """``model_name`` or ``model_group``."""
        return KEY_LABEL[self.source]


@dataclass(frozen=True)
class SloConfig:
    """A whole SLO file: the objectives, the alert windows and the budget window."""

    slos: tuple[Slo, ...]
    alerts: tuple[BurnRateAlert, ...]
    budget_window: str = "30d"

    def windows(self) -> list[str]:
        """Every window evaluated (each alert's two, and the budget's), shortest first."""
        names = {w for a in self.alerts for w in (a.long, a.short)} | {self.budget_window}
        return sorted(names, key=lambda w: parse_duration(w, "window"))


WORKBOOK_ALERTS = (
    BurnRateAlert("1h", "5m", 14.4, "page"),
    BurnRateAlert("6h", "30m", 6.0, "page"),
    BurnRateAlert("3d", "6h", 1.0, "ticket"),
)


def _window(value: object, where: str) -> str:
    if not isinstance(value, str) or not _PROM_DURATION.fullmatch(value):
        raise SloError(f"{where}: a window is a whole number and a unit (5m, 1h, 3d), got {value!r}")
    return value


def _alerts(raw: object) -> tuple[BurnRateAlert, ...]:
    if raw is None:
        return WORKBOOK_ALERTS
    if not isinstance(raw, list) or not raw:
        raise SloError("burn_rate_alerts: expected a non-empty list of {long, short, factor, action}")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"long", "short", "factor", "action"}:
            raise SloError(f"burn_rate_alerts: each needs exactly long, short, factor, action; got {item!r}")
        long, short = _window(item["long"], "burn_rate_alerts"), _window(item["short"], "burn_rate_alerts")
        if parse_duration(short, "") >= parse_duration(long, ""):
            raise SloError(f"burn_rate_alerts: the short window {short} must be shorter than the long one {long}")
        factor = item["factor"]
        if not isinstance(factor, int | float) or isinstance(factor, bool) or factor <= 0:
            raise SloError(f"burn_rate_alerts: factor must be a number > 0, got {factor!r}")
        if item["action"] not in get_args(Action):
            raise SloError(f"burn_rate_alerts: action must be page or ticket, got {item['action']!r}")
        out.append(BurnRateAlert(long, short, float(factor), item["action"]))
    return tuple(out)


def _bound_check(name: str, source: Source, sli: Sli, threshold: object) -> float:
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or threshold <= 0:
        raise SloError(f"slo {name}: a {sli} SLO needs threshold_s, a number of seconds > 0")
    bounds = BUCKET_BOUNDS[source][sli]
    if not any(math.isclose(threshold, b) for b in bounds):
        below = [b for b in bounds if b < threshold]
        above = [b for b in bounds if b > threshold]
        nearest = " or ".join(fmt_value(b) for b in (below[-1:] + above[:1]))
        raise SloError(
            f"slo {name}: threshold_s {fmt_value(float(threshold))} is not a bucket bound of the {source} {sli} "
            f"histogram, so no count of requests under it exists; use {nearest} "
            f"(bounds: {', '.join(fmt_value(b) for b in bounds)})"
        )
    return next(b for b in bounds if math.isclose(threshold, b))


_SLO_KEYS = {"name", "source", "sli", "objective", "threshold_s", "models", "good", "description"}


def parse_slo(raw: Mapping[str, Any]) -> Slo:
    """Validate one SLO mapping."""
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SloError(f"an SLO needs name: [a-z0-9-]+, got {name!r}")
    unknown = set(raw) - _SLO_KEYS
    if unknown:
        raise SloError(f"slo {name}: unknown keys {sorted(unknown)}")
    source = raw.get("source")
    if source not in FIELDS:
        raise SloError(f"slo {name}: source must be one of {sorted(FIELDS)}, got {source!r}")
    sli = raw.get("sli")
    if sli not in FIELDS[source]:
        raise SloError(f"slo {name}: the {source} source has no {sli!r} SLI (known: {', '.join(FIELDS[source])})")
    objective = raw.get("objective")
    if not isinstance(objective, int | float) or isinstance(objective, bool) or not 0 < objective < 1:
        raise SloError(f"slo {name}: objective must be a ratio strictly between 0 and 1, got {objective!r}")
    threshold = 0.0
    good: tuple[str, ...] = ()
    if sli == "availability":
        if "threshold_s" in raw:
            raise SloError(f"slo {name}: an availability SLO has no threshold_s")
        good = tuple(str(g) for g in raw.get("good") or DEFAULT_GOOD[source])
    else:
        if "good" in raw:
            raise SloError(f"slo {name}: good lists outcomes of an availability SLO; a {sli} SLO has threshold_s")
        threshold = _bound_check(name, source, sli, raw.get("threshold_s"))
    models = raw.get("models") or []
    if not isinstance(models, list):
        raise SloError(f"slo {name}: models must be a list of names")
    return Slo(
        name=name,
        source=source,
        sli=sli,
        objective=float(objective),
        threshold_s=threshold,
        models=tuple(str(m) for m in models),
        good=good,
        description=str(raw.get("description", "")),
    )


def load_slos(path: Path | str = DEFAULT_SLO_FILE) -> SloConfig:
    """Read and validate an SLO file; raises `SloError` naming what is wrong."""
    doc = read_listing(path, "slos", SloError)
    unknown = set(doc) - {"slos", "burn_rate_alerts", "budget_window"}
    if unknown:
        raise SloError(f"{path}: unknown keys {sorted(unknown)}")
    slos = tuple(parse_slo(raw) if isinstance(raw, dict) else parse_slo({}) for raw in doc["slos"])
    names = [s.name for s in slos]
    if len(set(names)) != len(names):
        raise SloError(f"{path}: SLO names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
    config = SloConfig(slos, _alerts(doc.get("burn_rate_alerts")), _window(doc.get("budget_window", "30d"), str(path)))
    longest = max(parse_duration(a.long, "") for a in config.alerts)
    if parse_duration(config.budget_window, "") < longest:
        raise SloError(f"{path}: budget_window {config.budget_window} is shorter than the longest alert window")
    return config


# --- counting good and total requests ---------------------------------------------------------------------


def good_and_total(slo: Slo, item: VllmEngineStats | ModelUsage) -> tuple[float, float] | None:
    """The cumulative (good, total) of one contributing series, None when it does not report the SLI (or its
    histogram has no bucket at the threshold: then ``-1.0, -1.0``, which the caller counts as unreadable)."""
    value = getattr(item, FIELDS[slo.source][slo.sli], None)
    if slo.sli == "availability":
        if not isinstance(value, dict) or not value:
            return None
        return float(sum(v for k, v in value.items() if k in slo.good)), float(sum(value.values()))
    if not isinstance(value, Histogram):
        return None
    for bound, count in value.buckets:
        if math.isclose(bound, slo.threshold_s):
            return float(count), float(value.count)
    return -1.0, -1.0


@dataclass(slots=True)
class _Contributor:
    good: float
    total: float
    seen_at: float


@dataclass(slots=True)
class SloSeries:
    """One SLO for one model or route: running good/total counts and their timestamped samples."""

    slo: Slo
    key: str
    good: float = 0.0
    total: float = 0.0
    times: list[float] = field(default_factory=list)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (good, total) at times[i]
    thin_at: int = 2 * THINNING
    thinning: int = THINNING
    pairs: list[_PairState] | None = None  # built by the evaluator at the first evaluation

    def add(self, now: float, good: float, total: float) -> None:
        """Grow the running counts and record a sample at ``now``."""
        self.good += good
        self.total += total
        if self.times and now <= self.times[-1]:  # the same instant (two sources in one tick): one sample
            self.samples[-1] = (self.good, self.total)
            return
        self.times.append(now)
        self.samples.append((self.good, self.total))

    def counts(self, now: float, window_s: float) -> tuple[float, float] | None:
        """(good, total) requests over ``[now - window_s, now]``: growth from the first sample inside the window
        to the newest; None with fewer than two samples inside. The window includes its start, as range selectors
        do up to Prometheus 2 (Prometheus 3 leaves a sample exactly at the start out)."""
        first = bisect.bisect_left(self.times, now - window_s)
        last = bisect.bisect_right(self.times, now) - 1
        if last <= first:
            return None
        (g0, t0), (g1, t1) = self.samples[first], self.samples[last]
        return g1 - g0, t1 - t0

    def error_ratio(self, now: float, window_s: float) -> float | None:
        """The share of bad requests over the window; None without requests in it (PromQL: NaN)."""
        counts = self.counts(now, window_s)
        if counts is None or counts[1] <= 0:
            return None
        return 1.0 - counts[0] / counts[1]

    def thin(self, now: float, windows_s: list[float]) -> None:
        """Drop samples older than the longest window, and keep the rest at least a `THINNING`th of the smallest
        window that still reaches them apart (the newest sample always stays)."""
        horizon = now - windows_s[-1]
        keep_t: list[float] = []
        keep_s: list[tuple[float, float]] = []
        for t, sample in zip(reversed(self.times), reversed(self.samples), strict=True):
            if t < horizon:
                break
            age = now - t
            spacing = next(w for w in windows_s if w >= age) / self.thinning
            if keep_t and keep_t[-1] - t < spacing:
                continue
            keep_t.append(t)
            keep_s.append(sample)
        self.times, self.samples = keep_t[::-1], keep_s[::-1]
        self.thin_at = len(self.times) + self.thinning


@dataclass(frozen=True, slots=True)
class _PairState:
    """One alert pair of one SLO series: its threshold, windows, labels and fingerprint."""

    pair: BurnRateAlert
    threshold: float
    long_s: float
    short_s: float
    labels: dict[str, str]
    fingerprint: str


@dataclass
class _Firing:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    value: float | None
    severity: Severity


class SloEvaluator:
    """Evaluates the SLOs on the snapshots as they arrive; an extension of the `AlertEngine` (same alert path).

    ``forget_after_s``: a contributing series silent this long is forgotten (its next snapshot is a new baseline);
    ``thinning``: samples kept per window (`THINNING`; a huge number keeps every sample, as Prometheus does).
    """

    def __init__(self, config: SloConfig, *, forget_after_s: float = 3600.0, thinning: int = THINNING) -> None:
        self.config = config
        self.thinning = thinning
        self.forget_after_s = forget_after_s
        self.windows = {w: parse_duration(w, "window") for w in config.windows()}
        self._windows_s = sorted(self.windows.values())
        self._by_source: dict[Source, list[Slo]] = {}
        for slo in config.slos:
            self._by_source.setdefault(slo.source, []).append(slo)
        self.series: dict[tuple[str, str], SloSeries] = {}
        self._contributors: dict[tuple[str, str, str, str], _Contributor] = {}
        self._firing: dict[str, _Firing] = {}
        self.unreadable: dict[str, int] = {}
        self._warned: set[str] = set()

    # the ingest path ----------------------------------------------------------------------------------

    def watches(self, event_type: type[Event]) -> bool:
        """Only the snapshots an SLO of this configuration counts from (`AlertSource.watches`)."""
        if issubclass(event_type, VllmInstanceSnapshot):
            return bool(self._by_source.get("vllm"))
        if issubclass(event_type, LitellmProxySnapshot):
            return bool(self._by_source.get("litellm"))
        return False

    def on_event(self, event: Event, now: float) -> list[Alert]:
        """Take one snapshot's counts; evaluate the alerts of the SLO series it moved."""
        if isinstance(event, VllmInstanceSnapshot):
            slos = self._by_source.get("vllm")
            items: Iterable[VllmEngineStats | ModelUsage] = event.engines
        elif isinstance(event, LitellmProxySnapshot):
            slos = self._by_source.get("litellm")
            items = event.usage
        else:
            return []
        if not slos:
            return []
        moved: dict[tuple[str, str], SloSeries] = {}
        for item in items:
            key = item.model_name if isinstance(item, VllmEngineStats) else item.model_group
            item_id = item.engine if isinstance(item, VllmEngineStats) else ""
            for slo in slos:
                if slo.models and key not in slo.models:
                    continue
                series = self._count(slo, key, (slo.name, event.source, key, item_id), item, now)
                if series is not None:
                    moved[(slo.name, key)] = series
        out: list[Alert] = []
        for series in moved.values():
            if len(series.times) >= series.thin_at:
                series.thin(now, self._windows_s)
            out.extend(self._evaluate(series, now))
        return out

    def _count(
        self, slo: Slo, key: str, cid: tuple[str, str, str, str], item: VllmEngineStats | ModelUsage, now: float
    ) -> SloSeries | None:
        counts = good_and_total(slo, item)
        if counts is None:
            return None
        if counts[1] < 0:
            self.unreadable[slo.name] = self.unreadable.get(slo.name, 0) + 1
            if slo.name not in self._warned:
                self._warned.add(slo.name)
                log.warning(
                    "histogram without a bucket at the SLO threshold; the series does not count",
                    extra={"slo": slo.name, "threshold_s": slo.threshold_s, "model": key},
                )
            return None
        good, total = counts
        previous = self._contributors.get(cid)
        self._contributors[cid] = _Contributor(good, total, now)
        if previous is None:  # a first sight is only a baseline, as the first sample of a counter in PromQL
            return None
        series = self.series.get((slo.name, key))
        if series is None:
            # made on the second sight, with the baseline at the first: a name seen once (a cardinality bomb
            # rotating model names) leaves no series behind, only a contributor forgotten after forget_after_s
            series = self.series[(slo.name, key)] = SloSeries(
                slo, key, thin_at=2 * self.thinning, thinning=self.thinning
            )
            series.add(previous.seen_at, 0.0, 0.0)
        if total < previous.total:  # a restarted engine: both counts start again from zero
            series.add(now, good, total)
        else:
            series.add(now, counter_growth(previous.good, good), total - previous.total)
        return series

    # alerts -------------------------------------------------------------------------------------------

    def _pairs(self, series: SloSeries) -> list[_PairState]:
        """The series' alert pairs with their labels and fingerprints, built once (fingerprints hash)."""
        if series.pairs is None:
            slo = series.slo
            series.pairs = []
            for pair in self.config.alerts:
                labels = {
                    "alertname": ALERT_NAME,
                    "severity": SEVERITY[pair.action],
                    "slo": slo.name,
                    slo.key_label: series.key,
                    "action": pair.action,
                    "window": pair.window,
                }
                series.pairs.append(
                    _PairState(
                        pair,
                        burn_threshold(slo, pair),
                        self.windows[pair.long],
                        self.windows[pair.short],
                        labels,
                        fingerprint(ALERT_NAME, labels),
                    )
                )
        return series.pairs

    def _evaluate(self, series: SloSeries, now: float) -> list[Alert]:
        out: list[Alert] = []
        slo = series.slo
        for state in self._pairs(series):
            threshold = state.threshold
            long = series.error_ratio(now, state.long_s)
            short = series.error_ratio(now, state.short_s) if long is not None and long > threshold else None
            burning = long is not None and short is not None and short > threshold
            firing = self._firing.get(state.fingerprint)
            if burning and firing is None:
                assert long is not None
                annotations = alert_annotations(slo, state.pair, series.key)
                firing = _Firing(state.labels, annotations, now, long / slo.budget, SEVERITY[state.pair.action])
                self._firing[state.fingerprint] = firing
                out.append(_alert(state.fingerprint, firing, "firing", 0.0))
            elif burning and firing is not None and long is not None:
                firing.value = long / slo.budget
            elif not burning and firing is not None:
                del self._firing[state.fingerprint]
                out.append(_alert(state.fingerprint, firing, "resolved", now))
        return out

    def tick(self, now: float) -> list[Alert]:
        """Time-driven work: windows move on without snapshots (a burn ends, a model goes away); forget the silent."""
        out: list[Alert] = []
        for key, series in list(self.series.items()):
            if series.times and series.times[-1] < now - self._windows_s[-1]:
                series.times, series.samples = [], []
            out.extend(self._evaluate(series, now))
            if not series.times:
                del self.series[key]
        stale = [cid for cid, c in self._contributors.items() if now - c.seen_at > self.forget_after_s]
        for cid in stale:
            del self._contributors[cid]
        return out

    def firing(self) -> list[Alert]:
        """Every SLO alert firing now."""
        return [_alert(fp, f, "firing", 0.0) for fp, f in sorted(self._firing.items())]

    # exported state -----------------------------------------------------------------------------------

    def burn_rates(self, now: float) -> Iterator[tuple[SloSeries, str, float]]:
        """(series, window, burn rate) for every window with requests in it."""
        for series in self.series.values():
            for window, seconds in self.windows.items():
                ratio = series.error_ratio(now, seconds)
                if ratio is not None:
                    yield series, window, ratio / series.slo.budget

    def budget_remaining(self, series: SloSeries, now: float) -> float | None:
        """1 − (bad share over the budget window) / budget; None without requests."""
        ratio = series.error_ratio(now, self.windows[self.config.budget_window])
        return None if ratio is None else 1.0 - ratio / series.slo.budget

    def metrics(self, now: float) -> dict[Family, str]:
        """The ``inferwatch_slo_*`` series."""
        w = SeriesWriter()
        for slo in self.config.slos:
            w.gauge(OBJECTIVE, label_block({"slo": slo.name, "source": slo.source, "sli": slo.sli}), slo.objective)
            w.counter(UNREADABLE, label_block({"slo": slo.name}), float(self.unreadable.get(slo.name, 0)))
        for series in sorted(self.series.values(), key=lambda s: (s.slo.name, s.key)):
            labels = {"slo": series.slo.name, series.slo.key_label: series.key}
            w.gauge(BUDGET_REMAINING, label_block(labels), self.budget_remaining(series, now))
        for series, window, burn in self.burn_rates(now):
            w.gauge(
                BURN_RATE,
                label_block({"slo": series.slo.name, series.slo.key_label: series.key, "window": window}),
                burn,
            )
        return w.freeze()

    def status(self, now: float) -> list[dict[str, Any]]:
        """Per SLO series, for the status page: objective, budget remaining, burn rate per window."""
        out = []
        for series in sorted(self.series.values(), key=lambda s: (s.slo.name, s.key)):
            out.append(
                {
                    "slo": series.slo.name,
                    "sli": series.slo.sli,
                    "source": series.slo.source,
                    "model": series.key,
                    "objective": series.slo.objective,
                    "threshold_s": series.slo.threshold_s,
                    "budget_window": self.config.budget_window,
                    "error_budget_remaining": self.budget_remaining(series, now),
                    "burn_rates": {
                        w: (None if (r := series.error_ratio(now, s)) is None else r / series.slo.budget)
                        for w, s in self.windows.items()
                    },
                }
            )
        return out


def burn_threshold(slo: Slo, pair: BurnRateAlert) -> float:
    """The error ratio above which a window burns ``pair.factor`` times too fast (the same float in PromQL)."""
    return pair.factor * slo.budget


def _what(slo: Slo) -> str:
    return {
        "availability": "requests that failed",
        "ttft": f"requests with a time to first token above {fmt_value(slo.threshold_s)} s",
        "e2e_latency": f"requests that took longer than {fmt_value(slo.threshold_s)} s",
        "inter_token_latency": f"inter-token gaps above {fmt_value(slo.threshold_s)} s",
    }[slo.sli]


def alert_annotations(slo: Slo, pair: BurnRateAlert, key: str) -> dict[str, str]:
    """The alert's annotations; ``key`` is the model or route (a ``{{ $labels.… }}`` template in PromQL's copy)."""
    return {
        "summary": f"SLO {slo.name} of {key} burns its error budget faster than {pair.factor:g}x ({pair.window})",
        "description": (
            f"The share of {_what(slo)} over the last {pair.long} and the last {pair.short} is above "
            f"{pair.factor:g}x the error budget ({slo.budget:.4g} of requests for an objective of {slo.objective:.4g})."
        ),
        "runbook_url": RUNBOOK_URL,
    }


def _alert(fp: str, firing: _Firing, state: Literal["firing", "resolved"], ends_at: float) -> Alert:
    return Alert(
        source=fp,
        observed_at=ends_at or firing.starts_at,
        collector=COLLECTOR,
        name=ALERT_NAME,
        state=state,
        severity=firing.severity,
        labels=dict(firing.labels),
        annotations=dict(firing.annotations),
        starts_at=firing.starts_at,
        ends_at=ends_at,
        value=firing.value,
    )


# --- the same SLOs in PromQL --------------------------------------------------------------------------------


def record_name(window: str) -> str:
    """The recording rule of the error ratio over ``window``: ``slo:sli_error:ratio_rate5m`` (Sloth's naming)."""
    return f"slo:sli_error:ratio_rate{window}"


def _regex_value(values: Iterable[str]) -> str:
    return "|".join(re.escape(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)


def sli_family(slo: Slo) -> FieldFamily:
    """The family the aggregator exports the SLO's contract field as (the series its PromQL copy reads)."""
    field_name = FIELDS[slo.source][slo.sli]
    return next(f for f in EXPORTED[slo.source] if f.field == field_name)


def error_ratio_expr(slo: Slo, window: str) -> str:
    """PromQL for the SLO's error ratio over ``window`` per model or route (what `SloSeries.error_ratio` counts)."""
    exported = sli_family(slo)
    family = exported.family.name
    key = slo.key_label
    only = f'{key}=~"{_regex_value(slo.models)}"' if slo.models else ""

    def rate(metric: str, *matchers: str) -> str:
        inner = ",".join(m for m in (*matchers, only) if m)
        selector = f"{metric}{{{inner}}}" if inner else metric
        return f"sum by ({key}) (rate({selector}[{window}]))"

    if slo.sli == "availability":  # a counter of requests by outcome
        total = rate(family + "_total")
        good = rate(family + "_total", f'{exported.label}=~"{_regex_value(slo.good)}"')
        return f"1 - ((({good}) or (0 * {total})) / {total})"  # no good outcome at all: 0 good, not no answer
    good = rate(family + "_bucket", f'le="{fmt_value(slo.threshold_s)}"')
    return f"1 - ({good} / {rate(family + '_count')})"


def prometheus_rules(config: SloConfig) -> dict[str, Any]:
    """The SLOs as Prometheus rule groups: per SLO, the error ratio per window (recording rules), the error budget
    left, and one alert per burn-rate pair (both windows above ``factor`` × budget)."""
    groups = []
    for slo in config.slos:
        rules: list[dict[str, Any]] = [
            {"record": record_name(w), "expr": error_ratio_expr(slo, w), "labels": {"slo": slo.name}}
            for w in config.windows()
        ]
        rules.append(
            {"record": "slo:objective:ratio", "expr": f"vector({slo.objective!r})", "labels": {"slo": slo.name}}
        )
        rules.append(
            {
                "record": "slo:error_budget_remaining:ratio",
                "expr": f'1 - {record_name(config.budget_window)}{{slo="{slo.name}"}} / {slo.budget!r}',
                "labels": {"slo": slo.name},
            }
        )
        for pair in config.alerts:
            threshold = repr(burn_threshold(slo, pair))
            rules.append(
                {
                    "alert": ALERT_NAME,
                    "expr": (
                        f'{record_name(pair.long)}{{slo="{slo.name}"}} > {threshold}'
                        f' and {record_name(pair.short)}{{slo="{slo.name}"}} > {threshold}'
                    ),
                    # slo as a static label too: the rules of two SLOs must differ in more than their expression
                    "labels": {
                        "severity": SEVERITY[pair.action],
                        "slo": slo.name,
                        "action": pair.action,
                        "window": pair.window,
                    },
                    "annotations": alert_annotations(slo, pair, "{{ $labels." + slo.key_label + " }}"),
                }
            )
        groups.append({"name": f"slo-{slo.name}", "rules": rules})
    return {"groups": groups}

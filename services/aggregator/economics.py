"""Unit economics per model: self-hosted cost and energy per million tokens, tokens per GPU-second, API price beside.

Method. Every tick (``tick_s``) the tracker looks at the latest snapshots the aggregator holds:

- **GPUs per vLLM container** (`attribute_gpus`): the gpu-agent maps each GPU process to its container; a vLLM
  instance's snapshot names its container. A GPU is attributed to the containers whose processes run on it,
  in proportion to the GPU memory those processes hold (a GPU shared by two containers is split between them;
  host processes without a container take their share to nobody).
- **Usage over the tick**: GPU-seconds (share × elapsed), energy (share × power draw × elapsed, rectangle rule
  on the gpu-agent's readings), GPU-hour cost (share × elapsed × the configured price of that GPU model), and
  the token counters' increases (prompt and generation tokens, prefill and decode seconds; a counter that
  went down restarted from zero).
- **Per model**: an instance's usage goes to its models in proportion to the tokens each produced in the tick
  (evenly when none did); replicas of one model add up. An instance whose GPUs are not seen (no gpu-agent on its
  host, a GPU NVML does not show, no container id) is left out, tokens and all: its tokens would look free.

Over the window (``window_s``, a ring of per-tick usage), `unit_economics` turns a model's usage into figures:
cost = GPU-hour cost + energy in kWh × price per kWh; cost per million tokens = cost / tokens × 10⁶; the cost is
split between input and output tokens by prefill and decode time (vLLM V1 reports both; without them only the
total is given). Cost figures exist only where every attributed GPU-second has a price (or only the kWh price
is set): no guessed price, no partial cost. Time when a model's GPUs are idle is counted (the GPUs are held),
so a quiet model's cost per token is high, as it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import msgspec

from inferwatch.contracts import Snapshot
from inferwatch.contracts.gpu import GpuHostSnapshot
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.services.aggregator.rule_engine import counter_growth
from inferwatch.shared.settings import SettingsError

Direction = Literal["total", "input", "output"]
"""The ``direction`` label of the per-token figures (in the order the status page lists them)."""
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)

MILLION = 1e6
JOULES_PER_KWH = 3.6e6
SECONDS_PER_HOUR = 3600.0
# A gap between ticks longer than this many tick periods (the aggregator was stopped, the host slept) counts as
# that many periods: GPU time nobody watched is not invented.
_MAX_TICK_GAP = 3.0


class EconomicsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The schema of ``INFERWATCH_AGGREGATOR_ECONOMICS_FILE`` (YAML).

    Attributes:
        gpu_hour_usd: USD per GPU-hour by NVML GPU name (``"NVIDIA H100 80GB HBM3": 2.5``); a GPU model not
            listed (or 0) has no price, and no cost is computed for the models using it.
        kwh_usd: USD per kWh of GPU energy; 0: not counted (a rented GPU's hourly price usually includes it).
        window_s: the window the figures cover.
        tick_s: how often usage is sampled.
        api_routes: vLLM model name → the LiteLLM model group whose price to show beside it; a model not listed
            is compared with the group of its own name, when there is one.
    """

    gpu_hour_usd: dict[str, float] = {}
    kwh_usd: float = 0.0
    window_s: float = 3600.0
    tick_s: float = 5.0
    api_routes: dict[str, str] = {}


def load_economics(path: str) -> EconomicsFile:
    """The settings in ``path`` (``""``: the defaults, no prices); a bad file raises `SettingsError`."""
    if not path:
        return EconomicsFile()
    try:
        settings = msgspec.yaml.decode(Path(path).read_bytes(), type=EconomicsFile)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SettingsError(f"INFERWATCH_AGGREGATOR_ECONOMICS_FILE {path}: {exc}") from None
    bad = [name for name, price in settings.gpu_hour_usd.items() if price < 0]
    if settings.kwh_usd < 0 or bad or settings.window_s <= 0 or settings.tick_s <= 0:
        raise SettingsError(
            f"INFERWATCH_AGGREGATOR_ECONOMICS_FILE {path}: prices must be >= 0, window_s and tick_s > 0"
        )
    return settings


@dataclass
class Usage:
    """What one model (or instance) used; additive.

    Attributes:
        seconds: wall-clock time the model was served (replicas count once).
        gpu_seconds: attributed GPU time.
        priced_gpu_seconds: the part of it on GPU models with a GPU-hour price.
        gpu_cost_usd: GPU-hour price × priced GPU time.
        energy_joules: attributed GPU energy.
        prompt_tokens: input tokens processed.
        generation_tokens: output tokens generated.
        prefill_seconds: summed per-request prefill time (vLLM V1).
        decode_seconds: summed per-request decode time (vLLM V1).
    """

    seconds: float = 0.0
    gpu_seconds: float = 0.0
    priced_gpu_seconds: float = 0.0
    gpu_cost_usd: float = 0.0
    energy_joules: float = 0.0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0

    def add(self, other: Usage, share: float = 1.0) -> None:
        """Add ``share`` of ``other``."""
        self.seconds += share * other.seconds
        self.gpu_seconds += share * other.gpu_seconds
        self.priced_gpu_seconds += share * other.priced_gpu_seconds
        self.gpu_cost_usd += share * other.gpu_cost_usd
        self.energy_joules += share * other.energy_joules
        self.prompt_tokens += share * other.prompt_tokens
        self.generation_tokens += share * other.generation_tokens
        self.prefill_seconds += share * other.prefill_seconds
        self.decode_seconds += share * other.decode_seconds


@dataclass(frozen=True)
class ModelEconomics:
    """One model's figures over the window. ``None``: not known (no price, no tokens, no timing).

    Attributes:
        model: the vLLM model name.
        span_s: seconds of the window covered so far.
        gpus: mean GPUs attributed over the span.
        power_watts: mean power drawn by them.
        tokens_per_gpu_second: by direction (``input``, ``output``, ``total``).
        energy_joules_per_million_tokens: input and output tokens together.
        cost_usd_per_million_tokens: by direction; ``input``/``output`` only with prefill and decode times.
        api_route: the LiteLLM model group compared with, ``""`` for none.
        api_usd_per_million_tokens: its configured price, by direction (``input``, ``output``).
    """

    model: str
    span_s: float
    gpus: float
    power_watts: float
    tokens_per_gpu_second: dict[Direction, float]
    energy_joules_per_million_tokens: float | None
    cost_usd_per_million_tokens: dict[Direction, float]
    api_route: str = ""
    api_usd_per_million_tokens: dict[Direction, float] = field(default_factory=dict)


def window_cost_usd(usage: Usage, kwh_usd: float) -> float | None:
    """GPU-hour cost plus energy cost, or ``None`` when part of the GPU time has no price (no partial cost)."""
    if usage.gpu_seconds <= 0:
        return None
    all_priced = usage.priced_gpu_seconds >= usage.gpu_seconds * (1 - 1e-9)
    if not all_priced and not (kwh_usd > 0 and usage.priced_gpu_seconds == 0):
        return None
    return usage.gpu_cost_usd + usage.energy_joules / JOULES_PER_KWH * kwh_usd


def unit_economics(model: str, usage: Usage, kwh_usd: float) -> ModelEconomics:
    """The figures of one model's usage (over ``usage.seconds``). Pure."""
    span_s = usage.seconds
    tokens: dict[Direction, float] = {
        "input": usage.prompt_tokens,
        "output": usage.generation_tokens,
        "total": usage.prompt_tokens + usage.generation_tokens,
    }
    per_gpu_second = {d: n / usage.gpu_seconds for d, n in tokens.items()} if usage.gpu_seconds > 0 else {}
    energy = usage.energy_joules / tokens["total"] * MILLION if tokens["total"] > 0 else None
    cost = window_cost_usd(usage, kwh_usd)
    per_million: dict[Direction, float] = {}
    if cost is not None and tokens["total"] > 0:
        per_million["total"] = cost / tokens["total"] * MILLION
        timed = usage.prefill_seconds + usage.decode_seconds
        if timed > 0:
            # prefill and decode time share the GPUs: each direction carries the cost of its share of that time
            if tokens["input"] > 0:
                per_million["input"] = cost * usage.prefill_seconds / timed / tokens["input"] * MILLION
            if tokens["output"] > 0:
                per_million["output"] = cost * usage.decode_seconds / timed / tokens["output"] * MILLION
    return ModelEconomics(
        model=model,
        span_s=span_s,
        gpus=usage.gpu_seconds / span_s if span_s > 0 else 0.0,
        power_watts=usage.energy_joules / span_s if span_s > 0 else 0.0,
        tokens_per_gpu_second=per_gpu_second,
        energy_joules_per_million_tokens=energy,
        cost_usd_per_million_tokens=per_million,
    )


@dataclass(frozen=True)
class GpuShare:
    """A part of one GPU attributed to a container.

    Attributes:
        name: the NVML GPU name (the price key).
        share: 0..1 of the GPU.
        power_watts: the GPU's whole power draw now (``None``: not read).
    """

    name: str
    share: float
    power_watts: float | None


def _same_container(a: str, b: str) -> bool:
    # Docker's full 64-hex id on one side, perhaps a short (12-hex) one on the other
    return bool(a) and bool(b) and (a.startswith(b) or b.startswith(a)) and min(len(a), len(b)) >= 12


def attribute_gpus(hosts: Iterable[GpuHostSnapshot], container_ids: Iterable[str]) -> dict[str, list[GpuShare]]:
    """For each of ``container_ids``: the GPUs its processes run on and its share of each, by GPU memory held."""
    wanted = [c for c in container_ids if c]
    shares: dict[str, list[GpuShare]] = {c: [] for c in wanted}
    for host in hosts:
        for gpu in host.gpus:
            held: dict[str, float] = {}
            for proc in gpu.processes:
                held[proc.container_id] = held.get(proc.container_id, 0.0) + max(proc.used_memory_bytes, 0.0)
            total = sum(held.values())
            for owner, memory in held.items():
                container = next((c for c in wanted if _same_container(c, owner)), None)
                if container is None:
                    continue
                share = memory / total if total > 0 else 1.0 / len(held)
                shares[container].append(GpuShare(gpu.name, share, gpu.power_draw_watts))
    return shares


def instance_usage(gpus: Iterable[GpuShare], elapsed_s: float, gpu_hour_usd: Mapping[str, float]) -> Usage:
    """What an instance's GPU shares cost over ``elapsed_s`` (no tokens yet). Pure."""
    usage = Usage()
    for gpu in gpus:
        seconds = gpu.share * elapsed_s
        usage.gpu_seconds += seconds
        price = gpu_hour_usd.get(gpu.name, 0.0)
        if price > 0:
            usage.priced_gpu_seconds += seconds
            usage.gpu_cost_usd += seconds / SECONDS_PER_HOUR * price
        usage.energy_joules += seconds * (gpu.power_watts or 0.0)
    return usage


def _increase(now: float | None, before: float | None) -> float:
    return 0.0 if now is None or before is None else counter_growth(before, now)


_COUNTERS = ("prompt_tokens", "generation_tokens", "prefill_seconds", "decode_seconds")


def _engine_counters(snapshot: VllmInstanceSnapshot) -> dict[tuple[str, str], tuple[float | None, ...]]:
    counters: dict[tuple[str, str], tuple[float | None, ...]] = {}
    for engine in snapshot.engines:
        prefill, decode = engine.request_prefill_time_seconds, engine.request_decode_time_seconds
        counters[(engine.model_name, engine.engine)] = (
            engine.prompt_tokens_total,
            engine.generation_tokens_total,
            prefill.sum if prefill is not None else None,
            decode.sum if decode is not None else None,
        )
    return counters


class EconomicsTracker:
    """Samples the aggregator's latest snapshots every tick and keeps each model's usage over the window.

    Sums over the window are kept running (added when a tick enters, taken off when it leaves) and the figures
    are computed once per tick, so a scrape only reads them.
    """

    def __init__(self, settings: EconomicsFile | None = None) -> None:
        self.settings = settings or EconomicsFile()
        self._last_tick: float | None = None
        self._counters: dict[tuple[str, str, str], tuple[float | None, ...]] = {}  # (source, model, engine)
        self._models: dict[str, list[str]] = {}  # the models an instance last reported, by source
        self._ticks: deque[tuple[float, dict[str, Usage]]] = deque()  # (at, usage by model)
        self._totals: dict[str, Usage] = {}  # usage by model over the ticks in the window
        self._ticks_with: dict[str, int] = {}  # how many ticks in the window have the model
        self._figures: list[ModelEconomics] = []

    def due(self, now: float) -> bool:
        """Whether a tick is due at ``now`` (monotonic seconds)."""
        return self._last_tick is None or now - self._last_tick >= self.settings.tick_s

    def observe(self, snapshots: Iterable[Snapshot], now: float) -> None:
        """One tick over the latest snapshots (``now``: monotonic seconds)."""
        vllm: list[VllmInstanceSnapshot] = []
        hosts: list[GpuHostSnapshot] = []
        proxies: list[LitellmProxySnapshot] = []
        for snapshot in snapshots:
            if isinstance(snapshot, VllmInstanceSnapshot):
                vllm.append(snapshot)
            elif isinstance(snapshot, GpuHostSnapshot):
                hosts.append(snapshot)
            elif isinstance(snapshot, LitellmProxySnapshot):
                proxies.append(snapshot)
        elapsed = 0.0 if self._last_tick is None else min(now - self._last_tick, _MAX_TICK_GAP * self.settings.tick_s)
        self._last_tick = now
        gpus = attribute_gpus(hosts, (s.container_id for s in vllm))
        by_model: dict[str, Usage] = {}
        seen: set[tuple[str, str, str]] = set()
        for snapshot in vllm:
            per_model = self._token_increases(snapshot, seen)
            shares = gpus.get(snapshot.container_id)
            if not shares:
                continue  # tokens from GPUs nobody reads would look free: an instance counts only with its GPUs
            share_of = _shares(per_model)
            hardware = instance_usage(shares, elapsed, self.settings.gpu_hour_usd)
            for model, tokens in per_model.items():
                usage = by_model.setdefault(model, Usage())
                usage.add(tokens)
                usage.add(hardware, share_of[model])
                usage.seconds = elapsed  # replicas of a model serve it side by side: wall time counts once
        for key in set(self._counters) - seen:
            del self._counters[key]
        for source in set(self._models) - {s.source for s in vllm}:
            del self._models[source]
        self._slide(now, by_model)
        self._figures = self._compute(api_prices(proxies, self.settings.api_routes, self._totals))

    def _slide(self, now: float, by_model: dict[str, Usage]) -> None:
        """Add this tick to the window and take off the ticks that left it."""
        self._ticks.append((now, by_model))
        for model, usage in by_model.items():
            self._totals.setdefault(model, Usage()).add(usage)
            self._ticks_with[model] = self._ticks_with.get(model, 0) + 1
        while self._ticks and self._ticks[0][0] <= now - self.settings.window_s:
            _, old = self._ticks.popleft()
            for model, usage in old.items():
                self._ticks_with[model] -= 1
                if self._ticks_with[model] == 0:  # gone from the window: drop it rather than keep rounding residue
                    del self._ticks_with[model], self._totals[model]
                else:
                    self._totals[model].add(usage, -1.0)

    def _token_increases(self, snapshot: VllmInstanceSnapshot, seen: set[tuple[str, str, str]]) -> dict[str, Usage]:
        """Token and timing increases per model of one instance since the previous tick."""
        counters = _engine_counters(snapshot)
        models = sorted({model for model, _ in counters}) or [c.id for c in snapshot.models if not c.parent]
        if models:
            self._models[snapshot.source] = models
        per_model = {model: Usage() for model in self._models.get(snapshot.source, [])}
        for (model, engine), values in counters.items():
            key = (snapshot.source, model, engine)
            seen.add(key)
            before = self._counters.get(key)
            self._counters[key] = values
            if before is None:
                continue  # the first reading is the baseline
            increases = [_increase(v, b) for v, b in zip(values, before, strict=True)]
            usage = per_model.setdefault(model, Usage())
            for name, value in zip(_COUNTERS, increases, strict=True):
                setattr(usage, name, getattr(usage, name) + value)
        return per_model

    def _compute(self, prices: Mapping[str, tuple[str, dict[Direction, float]]]) -> list[ModelEconomics]:
        result = []
        for model in sorted(self._totals):
            total = self._totals[model]
            if total.seconds <= 0:
                continue  # only the baseline tick so far
            figures = unit_economics(model, total, self.settings.kwh_usd)
            route, api = prices.get(model, ("", {}))
            result.append(replace(figures, api_route=route, api_usd_per_million_tokens=api))
        return result

    def figures(self) -> list[ModelEconomics]:
        """Every model's figures over the window as of the last tick, by model name."""
        return self._figures


def _shares(per_model: Mapping[str, Usage]) -> dict[str, float]:
    """Each model's share of an instance's GPUs: its share of the tokens in the tick, evenly when there were none."""
    tokens = {m: u.prompt_tokens + u.generation_tokens for m, u in per_model.items()}
    total = sum(tokens.values())
    if total > 0:
        return {m: n / total for m, n in tokens.items()}
    return {m: 1.0 / len(per_model) for m in per_model}


def api_prices(
    proxies: Iterable[LitellmProxySnapshot], routes: Mapping[str, str], models: Iterable[str]
) -> dict[str, tuple[str, dict[Direction, float]]]:
    """Per model: the LiteLLM model group compared with and its mean price per million tokens across deployments."""
    by_group: dict[str, list[tuple[float, float]]] = {}
    for proxy in proxies:
        for route in proxy.routes:
            if route.input_cost_per_token > 0 or route.output_cost_per_token > 0:
                by_group.setdefault(route.model_group, []).append(
                    (route.input_cost_per_token, route.output_cost_per_token)
                )
    result: dict[str, tuple[str, dict[Direction, float]]] = {}
    for model in models:
        group = routes.get(model, model)
        prices = by_group.get(group)
        if prices:
            result[model] = (
                group,
                {
                    "input": sum(p[0] for p in prices) / len(prices) * MILLION,
                    "output": sum(p[1] for p in prices) / len(prices) * MILLION,
                },
            )
    return result


def model_economics(tracker: EconomicsTracker | None) -> dict[str, list[tuple[str, str]]]:
    """The status page's lines per model: ``(label, value)`` pairs, formatted for reading."""
    if tracker is None:
        return {}
    lines: dict[str, list[tuple[str, str]]] = {}
    for fig in tracker.figures():
        rows: list[tuple[str, str]] = [
            ("window", f"{fig.span_s:.0f} s"),
            ("GPUs", f"{fig.gpus:.2f} at {fig.power_watts:.0f} W"),
        ]
        if "output" in fig.tokens_per_gpu_second:
            rows.append(("output tokens per GPU-second", f"{fig.tokens_per_gpu_second['output']:.1f}"))
        if fig.energy_joules_per_million_tokens is not None:
            rows.append(
                ("energy per million tokens", f"{fig.energy_joules_per_million_tokens / JOULES_PER_KWH:.3f} kWh")
            )
        for direction in DIRECTIONS:
            if direction in fig.cost_usd_per_million_tokens:
                value = fig.cost_usd_per_million_tokens[direction]
                rows.append((f"self-hosted USD per million {direction} tokens", f"{value:.4f}"))
        for direction, value in fig.api_usd_per_million_tokens.items():
            rows.append((f"API ({fig.api_route}) USD per million {direction} tokens", f"{value:.4f}"))
        lines[fig.model] = rows
    return lines

"""An llm-d endpoint picker (EPP) ``/metrics`` simulator: two pools, pods coming and going, every naming
generation selectable, the endpoint protected by a bearer token as the EPP's TokenReview filter does.

``EppSimulator.render(naming)`` writes the exposition; ``serve()`` answers ``/metrics`` with 401 without or
with a wrong token, 403 for a token in ``forbidden_tokens`` (no RBAC), 500 when ``tokenreview_broken``.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from inferwatch.simulators.demo import Demo

NAMINGS = ("llm_d_epp", "llm_d_router_epp", "inference_objective", "inference_model")
BUCKETS_S = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0)
TOKEN_BUCKETS = (1, 16, 128, 1024, 8192)
TTFT_BUCKETS_S = (0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
NTPOT_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0)
ITL_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 2.0)
TPOT_BUCKETS_S = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 2.0)
RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
REQUEST_BYTES_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
RESPONSE_BYTES_BUCKETS = (1, 8, 64, 512, 4096, 32778, 65536)  # 32778: the EPP's own typo, kept
PLUGIN_BUCKETS_S = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
# (extension point, plugin type, plugin name) of the simulated scheduler profile
PLUGINS = (
    ("Filter", "decode-filter", "decode-filter"),
    ("Scorer", "prefix-cache-scorer", "prefix-cache-scorer"),
    ("Scorer", "queue-scorer", "queue-scorer"),
    ("Picker", "max-score-picker", "max-score-picker"),
)
PREFIX_PLUGIN = ("prefix-cache-scorer", "prefix-cache-scorer")  # (plugin type, plugin name)
INDEXER_CAPACITY = 500_000.0
# per-request histograms observed in `EppSimulator.step`: quantity → family name after the generation's prefix
NEW_REQUEST_HISTOGRAMS = {
    "cached": "request_cached_tokens",
    "request_bytes": "request_size_bytes",
    "response_bytes": "response_size_bytes",
    "ntpot": "request_ntpot_seconds",
    "ttft": "request_ttft_seconds",
    "itl": "request_streaming_itl_seconds",
    "tpot": "request_streaming_tpot_seconds",
}
LEGACY_REQUEST_HISTOGRAMS = {
    "cached": "prompt_cached_tokens",
    "request_bytes": "request_sizes",
    "response_bytes": "response_sizes",
    "ntpot": "normalized_time_per_output_token_seconds",
}
REQUEST_HISTOGRAM_HELP = {
    "cached": "Inference objective prompt cached tokens distribution.",
    "request_bytes": "Inference objective requests size distribution in bytes.",
    "response_bytes": "Inference objective responses size distribution in bytes.",
    "ntpot": "Inference objective latency per output token distribution in seconds.",
    "ttft": "Inference objective time to first token distribution in seconds.",
    "itl": "Inference objective streaming inter-token latency distribution in seconds.",
    "tpot": "Inference objective streaming time per output token distribution in seconds.",
}


@dataclass
class Observed:
    """A cumulative histogram the simulator observes into, rendered as the Go client writes it."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, the last one +Inf
    total: float = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def lines(self, name: str, labels: str) -> str:
        """``_bucket``/``_sum``/``_count`` lines; ``labels`` without braces (may be empty)."""
        head = labels + "," if labels else ""
        tail = "{" + labels + "}" if labels else ""
        counts = self.counts or [0] * (len(self.bounds) + 1)
        out, running = [], 0
        for le, c in zip((*self.bounds, "+Inf"), counts, strict=True):
            running += c
            out.append(f'{name}_bucket{{{head}le="{le}"}} {running}\n')
        out.append(f"{name}_sum{tail} {round(self.total, 6)}\n{name}_count{tail} {running}\n")
        return "".join(out)


@dataclass
class SimPool:
    """One InferencePool."""

    name: str
    pods: list[str]
    kv_cache: float = 0.4
    queue: float = 1.0
    unready: bool = False  # every pod fails its readiness probe: the pool has no ready endpoint


@dataclass
class EppSimulator:
    """State of a simulated EPP.

    ``fast``: request durations all under 0.5 s (the default spreads them over every bucket, an eighth beyond 30 s);
    ``slow``: new requests take over 30 s (an upstream stall), counted in ``slow_requests``;
    ``cache_hit``: the mean prefix hit ratio of new requests (cache-aware routing working: about 0.65);
    ``ttft_slow``: new requests wait 4-10 s for their first token (prefill backlog on the model servers).
    """

    token: str = "sim-token"
    forbidden_tokens: set[str] = field(default_factory=set)
    tokenreview_broken: bool = False
    naming: str = "llm_d_epp"
    legacy_twins: bool = True  # current EPPs emit inference_objective_* twins next to llm_d_epp_*
    seed: int = 1
    pools: list[SimPool] = field(
        default_factory=lambda: [
            SimPool("vllm-qwen3-pool", ["qwen3-0", "qwen3-1"]),
            SimPool("vllm-llama-pool", ["llama-0"]),
        ]
    )
    models: tuple[tuple[str, str], ...] = (("qwen3-8b", "qwen3-8b"), ("llama", "llama-3.1-8b-instruct"))
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    slow_requests: dict[tuple[str, str], float] = field(default_factory=dict)
    scrapes: int = 0
    fast: bool = False
    slow: bool = False
    cache_hit: float = 0.65
    ttft_slow: bool = False
    observed: dict[tuple[str, tuple[str, ...]], Observed] = field(default_factory=dict)
    indexer_size: float = 0.0
    pool_spread: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # running mean, std devs

    def _hist(self, quantity: str, key: tuple[str, ...], bounds: tuple[float, ...]) -> Observed:
        return self.observed.setdefault((quantity, key), Observed(bounds))

    def step(self) -> None:
        """Advance: requests arrive, pods come and go, load moves."""
        rng = random.Random(self.seed + self.scrapes)
        self.scrapes += 1
        arrivals: dict[tuple[str, str], int] = {}
        for key in self.models:
            arrived = arrivals[key] = rng.randint(5, 50)
            self.requests[key] = self.requests.get(key, 0.0) + arrived
            if self.slow:
                self.slow_requests[key] = self.slow_requests.get(key, 0.0) + arrived
        pool = self.pools[self.scrapes % len(self.pools)]
        if len(pool.pods) > 1 and rng.random() < 0.3:
            pool.pods.pop()
        elif rng.random() < 0.3:
            pool.pods.append(f"{pool.name.split('-')[1]}-{self.scrapes}")
        for p in self.pools:
            p.kv_cache = round(rng.uniform(0.1, 0.95), 3)
            p.queue = float(rng.randint(0, 8))
        for p in self.pools:  # drawn after the older figures, so those keep their values for a seed
            self.pool_spread[p.name] = (
                float(rng.randint(1, 6)),
                round(rng.uniform(0.0, 0.2), 3),
                round(rng.uniform(0.0, 2.5), 3),
            )
        for key in self.models:
            self._observe_requests(rng, key, arrivals[key])

    def _observe_requests(self, rng: random.Random, key: tuple[str, str], arrived: int) -> None:
        """The per-request histograms of ``arrived`` new requests of one model pair (and the scheduler's)."""
        for i in range(arrived):
            streaming = "false" if i % 4 == 0 else "true"
            ttft = rng.uniform(4.0, 10.0) if self.ttft_slow else rng.lognormvariate(math.log(0.2), 0.6)
            self._hist("ttft", (*key, streaming), TTFT_BUCKETS_S).observe(ttft)
            self._hist("ntpot", key, NTPOT_BUCKETS_S).observe(rng.uniform(0.01, 0.06))
            if streaming == "true":
                self._hist("itl", key, ITL_BUCKETS_S).observe(rng.uniform(0.008, 0.04))
                self._hist("tpot", key, TPOT_BUCKETS_S).observe(rng.uniform(0.01, 0.05))
            prompt = rng.randint(50, 2000)
            hit = min(1.0, max(0.0, rng.gauss(self.cache_hit, 0.1)))
            self._hist("cached", key, TOKEN_BUCKETS).observe(float(int(prompt * hit)))
            request_bytes = float(prompt * 4 + 200)
            self._hist("request_bytes", key, REQUEST_BYTES_BUCKETS).observe(request_bytes)
            self._hist("response_bytes", key, RESPONSE_BYTES_BUCKETS).observe(float(rng.randint(100, 4000) * 4))
            self._hist("hit_ratio", PREFIX_PLUGIN, RATIO_BUCKETS).observe(round(hit, 3))
            self._hist("hit_bytes", PREFIX_PLUGIN, REQUEST_BYTES_BUCKETS).observe(float(int(request_bytes * hit)))
            for plugin in PLUGINS:
                self._hist("plugin", plugin, PLUGIN_BUCKETS_S).observe(round(rng.uniform(0.00005, 0.003), 6))
            self._hist("request_processing", (), PLUGIN_BUCKETS_S).observe(round(rng.uniform(0.0005, 0.004), 6))
            self._hist("response_processing", (), PLUGIN_BUCKETS_S).observe(round(rng.uniform(0.0001, 0.001), 6))
        self.indexer_size = min(INDEXER_CAPACITY, self.indexer_size + arrived * 12.0)

    def render(self, naming: str | None = None) -> str:
        """The exposition body in one naming generation (plus legacy twins for ``llm_d_epp`` if enabled)."""
        naming = naming or self.naming
        if naming not in NAMINGS:
            raise ValueError(f"unknown EPP naming {naming!r}")
        out: list[str] = []
        if naming in ("llm_d_epp", "llm_d_router_epp"):
            p = naming + "_"
            self._objectives(
                out,
                p + "request_total",
                p + "request_error_total",
                p + "request_duration_seconds",
                p + "request_input_tokens",
                p + "request_output_tokens",
                p + "request_running",
                std=True,
            )
            self._pools(
                out,
                p + "average_kv_cache_utilization",
                p + "average_queue_size",
                p + "ready_endpoints",
                p + "per_endpoint_queue_size",
                "model_server_endpoint",
                rank=True,
            )
            self._scheduler(out, p + "scheduler_e2e_duration_seconds", p + "scheduler_attempts_total", "endpoint_name")
            self._request_histograms(out, {q: p + name for q, name in NEW_REQUEST_HISTOGRAMS.items()}, std=True)
            self._pool_spread(out, p, legacy=False)
            self._plugins(out, p + "plugin_duration_seconds")
            self._prefix_indexer(out, p + "prefix_indexer_", labelled=True)
            for quantity in ("request_processing", "response_processing"):
                name = f"{p}{quantity}_duration_seconds"
                self._head(out, name, "histogram", f"EPP {quantity.replace('_', ' ')} latency in seconds.")
                out.append(self._hist(quantity, (), PLUGIN_BUCKETS_S).lines(name, ""))
            if naming == "llm_d_epp" and self.legacy_twins:
                self._legacy(out, "inference_objective")
        else:
            self._legacy(out, naming)
        return "".join(out)

    def _legacy(self, out: list[str], generation: str) -> None:
        g = generation + "_"
        self._objectives(
            out,
            g + "request_total",
            g + "request_error_total",
            g + "request_duration_seconds",
            g + "input_tokens",
            g + "output_tokens",
            g + "running_requests",
            std=False,
        )
        self._pools(
            out,
            "inference_pool_average_kv_cache_utilization",
            "inference_pool_average_queue_size",
            "inference_pool_ready_pods",
            "inference_pool_per_pod_queue_size",
            "model_server_pod",
            rank=False,
        )
        attempts = "inference_extension_scheduler_attempts_total" if generation == "inference_objective" else ""
        self._scheduler(out, "inference_extension_scheduler_e2e_duration_seconds", attempts, "pod_name")
        legacy = {q: g + name for q, name in LEGACY_REQUEST_HISTOGRAMS.items()}
        if generation == "inference_model":  # prompt_cached_tokens arrived with GIE v1.2
            legacy.pop("cached")
        self._request_histograms(out, legacy, std=False)
        if generation == "inference_objective":  # so did inference_pool_average_running_requests
            self._pool_spread(out, "inference_pool_", legacy=True)
        self._plugins(out, "inference_extension_plugin_duration_seconds")
        self._prefix_indexer(out, "inference_extension_prefix_indexer_", labelled=False)

    def _request_histograms(self, out: list[str], names: dict[str, str], *, std: bool) -> None:
        """Per-request histograms per model pair (TTFT also per ``streaming``), from what `step` observed."""
        extra = ',fairness_id="default-flow",priority="0"' if std else ""
        for quantity, name in names.items():
            self._head(out, name, "histogram", REQUEST_HISTOGRAM_HELP[quantity])
            for (q, key), hist in sorted(self.observed.items(), key=lambda item: item[0]):
                if q == quantity:
                    streaming = f',streaming="{key[2]}"' if quantity == "ttft" else ""
                    out.append(
                        hist.lines(name, f'model_name="{key[0]}",target_model_name="{key[1]}"{extra}{streaming}')
                    )

    def _pool_spread(self, out: list[str], prefix: str, *, legacy: bool) -> None:
        """Mean running requests per pool and, on current EPPs, the standard deviations across its endpoints."""
        gauges: tuple[tuple[str, int], ...] = (("average_running_requests", 0),)
        if not legacy:
            gauges += (("std_dev_running_requests", 2), ("std_dev_kv_cache_utilization", 1), ("std_dev_queue_size", 2))
        for suffix, index in gauges:
            name = prefix + suffix
            self._head(out, name, "gauge", "Spread of the pool's endpoints.")
            for p in self.pools:
                spread = self.pool_spread.get(p.name, (0.0, 0.0, 0.0))
                value = spread[index] * (1.2 if suffix == "std_dev_queue_size" else 1.0)
                out.append(f'{name}{{name="{p.name}"}} {round(value, 6)}\n')

    def _plugins(self, out: list[str], name: str) -> None:
        self._head(out, name, "histogram", "Plugin processing latency distribution in seconds.")
        for point, kind, plugin in PLUGINS:
            labels = f'extension_point="{point}",plugin_name="{plugin}",plugin_type="{kind}"'
            out.append(self._hist("plugin", (point, kind, plugin), PLUGIN_BUCKETS_S).lines(name, labels))

    def _prefix_indexer(self, out: list[str], prefix: str, *, labelled: bool) -> None:
        kind, plugin = PREFIX_PLUGIN
        labels = f'plugin_name="{plugin}",plugin_type="{kind}"' if labelled else ""
        self._head(out, prefix + "size", "gauge", "Size of the prefix indexer.")
        out.append(
            f"{prefix}size{{{labels}}} {self.indexer_size}\n" if labels else f"{prefix}size {self.indexer_size}\n"
        )
        for quantity, bounds in (("hit_ratio", RATIO_BUCKETS), ("hit_bytes", REQUEST_BYTES_BUCKETS)):
            self._head(out, prefix + quantity, "histogram", f"Prefix indexer {quantity.replace('_', ' ')}.")
            out.append(self._hist(quantity, PREFIX_PLUGIN, bounds).lines(prefix + quantity, labels))

    @staticmethod
    def _head(out: list[str], name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} [ALPHA] {help_text}\n# TYPE {name} {kind}\n")  # Go client: counters keep _total

    def _objectives(
        self,
        out: list[str],
        total: str,
        errors: str,
        duration: str,
        inputs: str,
        outputs: str,
        running: str,
        *,
        std: bool,
    ) -> None:
        extra = ',fairness_id="default-flow",priority="0"' if std else ""
        self._head(out, total, "counter", "Counter of inference objective requests broken out for each model.")
        for (m, t), v in sorted(self.requests.items()):
            out.append(f'{total}{{model_name="{m}",target_model_name="{t}"{extra}}} {v}\n')
        self._head(out, errors, "counter", "Counter of inference objective requests errors.")
        for (m, t), v in sorted(self.requests.items()):
            out.append(
                f'{errors}{{error_code="ModelServerError",model_name="{m}",target_model_name="{t}"{extra}}} {v // 20}\n'
            )
        for name, bounds, scale in (
            (duration, BUCKETS_S, 0.8),
            (inputs, TOKEN_BUCKETS, 300.0),
            (outputs, TOKEN_BUCKETS, 120.0),
        ):
            self._head(out, name, "histogram", "Distribution per model.")
            for (m, t), v in sorted(self.requests.items()):
                labels = f'model_name="{m}",target_model_name="{t}"{extra}'
                slow = self.slow_requests.get((m, t), 0.0) if name == duration else 0.0
                n, observed_sum = v - slow, v * scale
                for i, le in enumerate(bounds):
                    if name == duration and self.fast:  # spread over the buckets up to 0.5 s
                        cumulative = round(n * min(i + 1, 4) / 4)
                    else:
                        cumulative = round(n * (i + 1) / (len(bounds) + 1))
                    out.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}\n')
                if name == duration and (self.fast or slow):
                    observed_sum = n * (0.1 if self.fast else scale) + slow * 45.0
                out.append(
                    f'{name}_bucket{{{labels},le="+Inf"}} {v}\n{name}_sum{{{labels}}} {observed_sum}\n'
                    f"{name}_count{{{labels}}} {v}\n"
                )
        self._head(out, running, "gauge", "Inference objective number of running requests in each model.")
        for m, t in self.models:
            labels = f'model_name="{m}",target_model_name="{t}"{extra}' if std else f'model_name="{m}"'
            out.append(f"{running}{{{labels}}} 3\n")

    def _pools(
        self, out: list[str], kv: str, queue: str, ready: str, per: str, endpoint_label: str, *, rank: bool
    ) -> None:
        for name, attr in ((kv, "kv_cache"), (queue, "queue")):
            self._head(out, name, "gauge", "The average of the pool's endpoints.")
            for p in self.pools:
                out.append(f'{name}{{name="{p.name}"}} {getattr(p, attr)}\n')
        self._head(out, ready, "gauge", "The number of ready endpoints in the inference server pool.")
        for p in self.pools:
            out.append(f'{ready}{{name="{p.name}"}} {0 if p.unready else len(p.pods)}\n')
        self._head(out, per, "gauge", "The total number of queue for each endpoint.")
        for p in self.pools:
            for i, pod in enumerate(p.pods):
                ep = f"{pod}-rank-0" if rank else pod
                out.append(f'{per}{{{endpoint_label}="{ep}",name="{p.name}"}} {i + p.queue}\n')

    def _scheduler(self, out: list[str], e2e: str, attempts: str, pod_label: str) -> None:
        n = sum(self.requests.values())
        self._head(out, e2e, "histogram", "Scheduler end-to-end latency distribution in seconds.")
        for i, le in enumerate((0.0001, 0.001, 0.01, 0.1)):
            out.append(f'{e2e}_bucket{{le="{le}"}} {round(n * (i + 1) / 5)}\n')
        out.append(f'{e2e}_bucket{{le="+Inf"}} {n}\n{e2e}_sum {n * 0.002}\n{e2e}_count {n}\n')
        if attempts:
            self._head(out, attempts, "counter", "Total number of scheduling attempts.")
            pod = self.pools[0].pods[0] if self.pools[0].pods else "none"
            out.append(
                f'{attempts}{{{pod_label}="{pod}",namespace="default",port="8000",status="success",'
                f'target_model_name="qwen3-8b"}} {n}\n'
            )
            out.append(
                f'{attempts}{{{pod_label}="",namespace="",port="",status="failure",target_model_name="qwen3-8b"}} 2\n'
            )

    async def handle_metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics`` behind the TokenReview/SubjectAccessReview filter."""
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if self.tokenreview_broken and token:
            return web.Response(status=500, text="Internal Server Error")
        if token in self.forbidden_tokens:
            return web.Response(status=403, text="Forbidden")
        if not token or token != self.token:
            return web.Response(status=401, text="Unauthorized")
        self.step()
        return web.Response(text=self.render(), content_type="text/plain", charset="utf-8")

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
        """Serve ``/metrics``; returns the runner and the base URL."""
        app = web.Application()
        app.router.add_get("/metrics", self.handle_metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        return runner, f"http://{host}:{bound}"


async def start_demo() -> Demo:
    """``inferwatch up --demo``: one token-protected EPP (two pools) and a token file for the scraper.

    Under ``INFERWATCH_SIM_CALM=1`` request durations stay under 0.5 s (the default spread puts an eighth of the
    requests beyond 30 s, which fires EppLatencyHigh).
    """
    import shutil
    import tempfile

    from inferwatch.simulators.scenarios import CALM_ENV, Scenario

    sim = EppSimulator(token="demo-sa-token", fast=os.environ.get(CALM_ENV) == "1")
    runner, url = await sim.serve()
    token_dir = tempfile.mkdtemp(prefix="inferwatch-epp-")
    token_file = os.path.join(token_dir, "token")
    await asyncio.to_thread(Path(token_file).write_text, sim.token, encoding="utf-8")
    pool = sim.pools[1]
    model = sim.models[0][0]

    def set_pool(on: bool) -> None:
        pool.unready = on

    def set_slow(on: bool) -> None:
        sim.slow = on

    def set_cache_hit_low(on: bool) -> None:
        sim.cache_hit = 0.05 if on else 0.65

    def set_ttft_slow(on: bool) -> None:
        sim.ttft_slow = on

    scenarios = [
        Scenario(
            "epp_no_ready_pods",
            "EppNoReadyPods",
            f"every pod of InferencePool {pool.name} is unready",
            lambda: set_pool(True),
            lambda: set_pool(False),
            labels={"target": url, "pool": pool.name},
        ),
        Scenario(
            "epp_latency_high",
            "EppLatencyHigh",
            "requests through the EPP take over 30 s",
            lambda: set_slow(True),
            lambda: set_slow(False),
            labels={"target": url, "model_name": model},
        ),
        Scenario(
            "epp_cache_hit_low",
            "EppCacheHitRateLow",
            "cache-aware routing finds about 5 % of each prompt's prefix cached (normally about 65 %)",
            lambda: set_cache_hit_low(True),
            lambda: set_cache_hit_low(False),
            labels={"target": url, "plugin_name": PREFIX_PLUGIN[1]},
        ),
        Scenario(
            "epp_ttft_high",
            "EppTtftHigh",
            "streamed requests through the EPP wait 4-10 s for their first token",
            lambda: set_ttft_slow(True),
            lambda: set_ttft_slow(False),
            labels={"target": url, "model_name": model},
        ),
    ]
    return Demo(
        env={"INFERWATCH_EPP_TARGETS": url, "INFERWATCH_EPP_TOKEN_FILE": token_file},
        runners=[runner],
        scenarios=scenarios,
        cleanup=[lambda: shutil.rmtree(token_dir, ignore_errors=True)],
    )

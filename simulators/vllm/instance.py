"""The simulated vLLM instance: traffic model, engine steps and rendering of its exposition."""

from __future__ import annotations

import enum
import json
import math
import random
import time
import uuid
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from inferwatch.shared.upstream_buckets import (
    HTTP_FEW,
    HTTP_HIGHR,
    ITERATION,
    N_BUCKETS,
    PREEMPTIONS,
    PREFILL_PER_TOKEN,
    V0_E2E,
    V0_TPOT,
    V0_TTFT,
    V1_ITL,
    V1_LATENCY,
    V1_TTFT,
    buckets_125,
)
from inferwatch.simulators.vllm.engine import Engine, EngineMetrics, Req, poisson, round_int
from inferwatch.simulators.vllm.registry import Family, Hist, Registry, fmt_legacy

FAULTS = frozenset({"500", "hang", "dribble", "garbage", "huge", "bad_utf8", "nan"})
"""Values accepted by :attr:`SimulatedVllm.fault`; they change only ``/metrics``."""

_RENDER_MIN_INTERVAL_S = 1.0  # the HTTP layer re-renders one instance at most this often
_MAX_CATCHUP_S = 300.0  # one request never simulates more than this much elapsed time (the rest is skipped)
_MIN_ADVANCE_S = 0.25  # requests closer together than this do not step the simulation
_SUBSTEP_S = 1.0  # step() integrates in slices of at most this length


class VllmGeneration(enum.StrEnum):
    """Which vLLM release line an instance imitates (the value is the version prefix)."""

    V0_5 = "0.5"
    V0_6 = "0.6"
    V1_10 = "0.10"
    V1 = "0.33"


@dataclass(eq=False)
class SimulatedVllm:
    """The evolving state of one simulated vLLM server.

    Configuration fields (``model`` … ``seed``, ``rps``, ``start_wall``) are read once, at construction.  ``dead``,
    ``fault``, ``sleep_level`` and the alert-scenario knobs (``stalled`` … ``prefill_slowdown``) may be flipped at
    any time.

    Attributes:
        model: served model name (the first ``--served-model-name``), the ``model_name`` label.
        root: ``--model`` path or HF id (``root`` of the ``/v1/models`` cards; 0.5.x used the served name).
        generation: which release line's metric shape to produce.
        version: the version ``/version`` reports, e.g. ``"0.33.0"``.
        max_model_len: context length (bucket edges of the token histograms, ``/v1/models``).
        engines: data-parallel engine cores (V1 only: series carry ``engine="0".."N-1"``).
        extra_models: extra served names; one ``/v1/models`` card each, same root.
        load_seconds: every endpoint answers 503 for this long after ``started_at``.
        seed: RNG seed; the same seed and the same ``step`` calls give the same values.
        rps: mean request arrivals per second per engine (default: drawn from the seed, 0.6–1.4).
        bursts: traffic bursts (2.5–6 times the arrivals for 20–90 s, about one per 5 minutes); off, the arrivals
            follow only their slow daily-like wave (``INFERWATCH_SIM_CALM``: no queue builds by chance).
        start_wall: unix time the process "started" (``process_start_time_seconds``; ``_created`` values follow).
        dead: engine dead: ``/health`` and ``/v1/models`` answer 503, metrics freeze.
        fault: one of :data:`FAULTS` to break ``/metrics`` in that way, or ``None``.
        sleep_level: 0 awake, 1 or 2 sleeping (``vllm:engine_sleep_state``; no new traffic is admitted).
        started_at: clock reading at which loading began; ``build_app``/``serve`` set it if ``None`` (the factory
            form of ``build_app`` sets it on the first request).
        stalled: the scheduler admits nothing: arrivals pile up in the waiting queue.
        kv_usage_floor: KV-cache blocks held outside the simulated requests (e.g. by a leak), as a share of the
            cache: reported usage is at least this.
        force_preemption: the scheduler preempts the newest running request every step (KV blocks short).
        prefill_slowdown: prefill runs this many times slower (slow time to first token).
        error_share: this share of the requests that would finish ends with ``finished_reason="error"`` instead
            (V1 only, the one generation with that reason): an availability SLO burning its budget.
        spec_tokens: speculative tokens per draft (``--speculative-config``'s ``num_speculative_tokens``); 0 off.
            The ``spec_decode_*`` families then count drafts, proposed and accepted tokens.
        lora_adapters: LoRA adapter names served beside the base model (V1: ``vllm:lora_requests_info``); a share
            of the requests asks for one.
        max_loras: ``--max-loras``, the ``max_lora`` label.
        mfu_metrics: ``--enable-mfu-metrics`` (0.33): the ``estimated_*_per_gpu`` counters move.
        params: model parameters, for the estimated FLOPs and bytes.
    """

    model: str
    root: str
    generation: VllmGeneration
    version: str
    max_model_len: int = 8192
    engines: int = 1
    extra_models: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    seed: int = 0
    rps: float | None = None
    bursts: bool = True
    start_wall: float | None = None
    dead: bool = False
    fault: str | None = None
    sleep_level: int = 0
    started_at: float | None = None
    stalled: bool = False
    kv_usage_floor: float = 0.0
    force_preemption: bool = False
    prefill_slowdown: float = 1.0
    error_share: float = 0.0
    spec_tokens: int = 0
    lora_adapters: list[str] = field(default_factory=list)
    max_loras: int = 4
    mfu_metrics: bool = False
    params: float = 8.0e9

    def __post_init__(self) -> None:
        self.generation = VllmGeneration(self.generation)
        if self.engines < 1:
            raise ValueError("engines must be >= 1")
        if self.generation in (VllmGeneration.V0_5, VllmGeneration.V0_6) and self.engines != 1:
            raise ValueError("data-parallel engines exist only in the V1 generations")
        if self.start_wall is None:
            self.start_wall = time.time()
        self._rng = random.Random(self.seed)
        rng = self._rng
        self._t = 0.0  # simulated seconds since the engine became ready
        self._wall_ready = self.start_wall + self.load_seconds + 1.0 + rng.random()
        self._rps = self.rps if self.rps is not None else rng.uniform(0.6, 1.4)
        self._phase = rng.uniform(0.0, 2 * math.pi)
        self._period = rng.uniform(600.0, 1800.0)
        self._burst_until = -1.0
        self._burst_mult = 1.0
        self._mu_prompt = math.log(rng.uniform(500.0, 1100.0))
        self._mu_gen = math.log(rng.uniform(180.0, 320.0))
        self._hit_share = rng.uniform(0.3, 0.7)  # share of requests that start with a cached prefix (V1)
        # chance a draft token is accepted, given the ones before were (own RNG: the other draws stay as they were)
        self._spec_alpha = random.Random(self.seed + 0x5BEC).uniform(0.6, 0.85)
        self._lora_info: Family | None = None  # vllm:lora_requests_info, when LoRA adapters are served (V1)
        self._lora_state: tuple[str, str] | None = None
        self._last_clock: float | None = None
        self._cache: bytes | None = None
        self._cache_at = -math.inf
        v0 = self.generation in (VllmGeneration.V0_5, VllmGeneration.V0_6)
        self._v0 = v0
        self._prefix_caching = not v0
        self._reasons: tuple[str, ...] = {
            VllmGeneration.V0_5: ("stop", "length"),
            VllmGeneration.V0_6: ("stop", "length"),
            VllmGeneration.V1_10: ("stop", "length", "abort"),
            VllmGeneration.V1: ("stop", "length", "abort", "error", "repetition"),
        }[self.generation]
        self._block = 16
        # KV budget: a simulated GPU share that always fits one max-length request.
        kv_tokens = max(int(rng.uniform(70_000, 130_000)), int(self.max_model_len * 1.25))
        self._num_gpu_blocks = kv_tokens // self._block
        self._ems = [EngineMetrics() for _ in range(self.engines)]
        self._engines = [
            Engine(
                em,
                kv_cap=self._num_gpu_blocks * self._block,
                block=self._block,
                max_seqs=256,
                base_itl=rng.uniform(0.010, 0.016),
                prefill_tps=rng.uniform(9000.0, 16000.0),
                chunk=2048 if v0 else 8192,
            )
            for em in self._ems
        ]
        fmt = fmt_legacy if v0 else floatToGoString
        self._reg = Registry(fmt, multiprocess=self.generation is VllmGeneration.V0_6)
        self._http_on = False
        self._proc_on = False
        if self.generation is VllmGeneration.V0_5:
            self._build_process("3", "10", "14")
            self._build_v05()
        elif self.generation is VllmGeneration.V0_6:
            self._build_v06()
        elif self.generation is VllmGeneration.V1_10:
            self._build_process("3", "12", "11")
            self._build_v110()
            self._build_http()
        else:
            self._build_process("3", "12", "13")
            self._build_v133()
            self._build_http()

    # ---- metric definitions ---------------------------------------------------------------------------------

    def _build_process(self, major: str, minor: str, patch: str) -> None:
        reg = self._reg
        rng = self._rng
        gens = ("0", "1", "2")
        fam = reg.family("python_gc_objects_collected", "Objects collected during gc", "counter", ("generation",))
        self._gc_collected = [fam.child(g) for g in gens]
        fam = reg.family(
            "python_gc_objects_uncollectable", "Uncollectable objects found during GC", "counter", ("generation",)
        )
        for g in gens:
            fam.child(g)
        fam = reg.family(
            "python_gc_collections", "Number of times this generation was collected", "counter", ("generation",)
        )
        self._gc_collections = [fam.child(g) for g in gens]
        reg.family(
            "python_info",
            "Python platform information",
            "gauge",
            ("implementation", "major", "minor", "patchlevel", "version"),
        ).child("CPython", major, minor, patch, f"{major}.{minor}.{patch}", value=1.0)
        big = self._v0  # the 0.5 API server hosts the engine, so it holds the model's host memory too
        self._vmem = reg.family("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge").child(
            value=float(int(rng.uniform(1.0e11, 1.1e11) if big else rng.uniform(4.0e10, 4.6e10)) // 4096 * 4096)
        )
        self._rss_base = float(int(rng.uniform(8.5e9, 9.8e9) if big else rng.uniform(2.2e9, 2.6e9)) // 4096 * 4096)
        self._rss = reg.family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge").child(
            value=self._rss_base
        )
        assert self.start_wall is not None
        reg.family(
            "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge"
        ).child(value=round(self.start_wall, 2))
        self._cpu_acc = rng.uniform(20.0, 60.0)
        self._cpu = reg.family(
            "process_cpu_seconds", "Total user and system CPU time spent in seconds.", "counter"
        ).child(value=round(self._cpu_acc, 2))
        self._fds = reg.family("process_open_fds", "Number of open file descriptors.", "gauge").child(value=80.0)
        reg.family("process_max_fds", "Maximum number of open file descriptors.", "gauge").child(value=1048576.0)
        self._proc_on = True

    def _base_values(self, i: int) -> tuple[str, ...]:
        return (self.model,) if self._v0 else (self.model, str(i))

    def _per_engine(self, fam: Family, attr: str, *extra: str) -> None:
        for i, em in enumerate(self._ems):
            setattr(em, attr, fam.child(*self._base_values(i), *extra, created=self._wall_ready))

    def _cache_config_v0(self, with_attention_free: bool) -> dict[str, str]:
        info = {
            "block_size": str(self._block),
            "gpu_memory_utilization": "0.9",
            "swap_space_bytes": str(4 * 1024**3),
            "num_gpu_blocks_override": "None",
            "cache_dtype": "auto",
        }
        if with_attention_free:
            info["is_attention_free"] = "False"
        info.update(
            {
                "sliding_window": "None",
                "enable_prefix_caching": "False",
                "cpu_offload_gb": "0",
                "num_gpu_blocks": str(self._num_gpu_blocks),
                "num_cpu_blocks": "2048",
            }
        )
        return info

    def _build_v0_common(self, *, mp: bool) -> None:
        """V0 engine families (0.5.3 order; the 0.6.3 multiprocess order is applied by the caller)."""
        reg = self._reg
        m = ("model_name",)
        g = reg.family
        self._v0_fams = {
            "running": g(
                "vllm:num_requests_running", "Number of requests currently running on GPU.", "gauge", m, nan=True
            ),
            "waiting": g(
                "vllm:num_requests_waiting", "Number of requests waiting to be processed.", "gauge", m, nan=True
            ),
            "swapped": g("vllm:num_requests_swapped", "Number of requests swapped to CPU.", "gauge", m),
            "gpu_cache_usage": g(
                "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", "gauge", m, nan=True
            ),
            "cpu_cache_usage": g(
                "vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage.", "gauge", m
            ),
        }
        if mp:
            fam = g("vllm:cpu_prefix_cache_hit_rate", "CPU prefix cache block hit rate.", "gauge", m)
            fam.child(self.model, value=-1.0)
            fam = g("vllm:gpu_prefix_cache_hit_rate", "GPU prefix cache block hit rate.", "gauge", m)
            fam.child(self.model, value=-1.0)
        for attr, fam in self._v0_fams.items():
            self._per_engine(fam, attr)
        self._per_engine(
            g("vllm:num_preemptions", "Cumulative number of preemption from the engine.", "counter", m), "preemptions"
        )
        self._per_engine(g("vllm:prompt_tokens", "Number of prefill tokens processed.", "counter", m), "prompt_tokens")
        self._per_engine(
            g("vllm:generation_tokens", "Number of generation tokens processed.", "counter", m), "gen_tokens"
        )
        self._per_engine(
            g(
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                "histogram",
                m,
                buckets=V0_TTFT,
            ),
            "h_ttft",
        )
        self._per_engine(
            g(
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                "histogram",
                m,
                buckets=V0_TPOT,
            ),
            "h_tpot",
        )
        self._per_engine(
            g(
                "vllm:e2e_request_latency_seconds",
                "Histogram of end to end request latency in seconds.",
                "histogram",
                m,
                buckets=V0_E2E,
            ),
            "h_e2e",
        )
        tok = buckets_125(self.max_model_len)
        self._per_engine(
            g("vllm:request_prompt_tokens", "Number of prefill tokens processed.", "histogram", m, buckets=tok),
            "h_prompt",
        )
        self._per_engine(
            g("vllm:request_generation_tokens", "Number of generation tokens processed.", "histogram", m, buckets=tok),
            "h_gen",
        )
        if not mp:
            self._per_engine(
                g(
                    "vllm:request_params_best_of",
                    "Histogram of the best_of request parameter.",
                    "histogram",
                    m,
                    buckets=N_BUCKETS,
                ),
                "h_best_of",
            )
        self._per_engine(
            g("vllm:request_params_n", "Histogram of the n request parameter.", "histogram", m, buckets=N_BUCKETS),
            "h_n",
        )
        success = g(
            "vllm:request_success",
            "Count of successfully processed requests.",
            "counter",
            ("model_name", "finished_reason"),
        )
        model = self.model
        self._ems[0].success_factory = lambda reason: success.child(model, reason)  # V0 creates these lazily
        if self.spec_tokens or not mp:  # registered but never set without a draft model: only HELP/TYPE lines
            spec = (
                (g("vllm:spec_decode_draft_acceptance_rate", "Speulative token acceptance rate.", "gauge", m), "rate"),
                (g("vllm:spec_decode_efficiency", "Speculative decoding system efficiency.", "gauge", m), "efficiency"),
                (g("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", "counter", m), "accepted"),
                (g("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", "counter", m), "draft_tokens"),
                (g("vllm:spec_decode_num_emitted_tokens", "Number of emitted tokens.", "counter", m), "emitted"),
            )
            if self.spec_tokens:
                for fam, attr in spec:
                    self._per_engine(
                        fam, {"rate": "spec_accept_rate", "efficiency": "spec_efficiency"}.get(attr, "spec_" + attr)
                    )
        self._per_engine(
            g("vllm:avg_prompt_throughput_toks_per_s", "Average prefill throughput in tokens/s.", "gauge", m, nan=True),
            "avg_prompt_tp",
        )
        self._per_engine(
            g(
                "vllm:avg_generation_throughput_toks_per_s",
                "Average generation throughput in tokens/s.",
                "gauge",
                m,
                nan=True,
            ),
            "avg_gen_tp",
        )

    def _build_v05(self) -> None:
        fam = self._reg.family(
            "vllm:cache_config_info", "information of cache_config", "gauge", tuple(self._cache_config_v0(False))
        )
        fam.child(*self._cache_config_v0(False).values(), value=1.0)
        self._build_v0_common(mp=False)

    def _build_v06(self) -> None:
        info = self._cache_config_v0(True)
        fam = self._reg.family(
            "vllm:cache_config_info", "Information of the LLMEngine CacheConfig", "gauge", tuple(info)
        )
        fam.child(*info.values(), value=1.0)
        self._build_v0_common(mp=True)
        # MultiProcessCollector groups families by their mmap file: gauges, counters, then histograms.
        order = {"gauge": 0, "counter": 1, "histogram": 2}
        self._reg.families.sort(key=lambda f: order[f.kind])

    def _v1_labels(self) -> tuple[str, str]:
        return ("model_name", "engine")

    def _v1_request_success(self) -> None:
        fam = self._reg.family(
            "vllm:request_success",
            "Count of successfully processed requests.",
            "counter",
            ("model_name", "engine", "finished_reason"),
            created=True,
        )
        for reason in self._reasons:  # reason-major, engine-minor, as vLLM creates them
            for i, em in enumerate(self._ems):
                em.success[reason] = fam.child(self.model, str(i), reason, created=self._wall_ready)

    def _v1_histograms(self, *, v110: bool) -> None:
        g = self._reg.family
        lab = self._v1_labels()
        tok = buckets_125(self.max_model_len)

        def h(name: str, help_: str, buckets: tuple[float, ...], attr: str) -> None:
            self._per_engine(g(name, help_, "histogram", lab, buckets=buckets, created=True), attr)

        h("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tok, "h_prompt")
        h("vllm:request_generation_tokens", "Number of generation tokens processed.", tok, "h_gen")
        h("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", ITERATION, "h_iter")
        h(
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            tok,
            "h_max_gen",
        )
        h("vllm:request_params_n", "Histogram of the n request parameter.", N_BUCKETS, "h_n")
        h("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", tok, "h_max_tokens")
        h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", V1_TTFT, "h_ttft")
        if v110:
            h("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", V1_ITL, "h_tpot")
            h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", V1_ITL, "h_itl")
            h(
                "vllm:time_per_prefill_token_request_seconds",
                "Time spent per token during prefill  phase in seconds",
                PREFILL_PER_TOKEN,
                "h_prefill_per_tok",
            )
        else:
            h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", V1_ITL, "h_itl")
            h(
                "vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.",
                V1_ITL,
                "h_req_tpot",
            )
        h("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", V1_LATENCY, "h_e2e")
        h(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            V1_LATENCY,
            "h_queue",
        )
        h(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            V1_LATENCY,
            "h_inference",
        )
        h(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            V1_LATENCY,
            "h_prefill",
        )
        h(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            V1_LATENCY,
            "h_decode",
        )
        if not v110:
            h(
                "vllm:request_num_preemptions",
                "Histogram of the number of times a request was preempted.",
                PREEMPTIONS,
                "h_num_preempt",
            )
            h(
                "vllm:request_prefill_kv_computed_tokens",
                "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
                tok,
                "h_prefill_kv",
            )

    def _v1_spec_decode_and_lora(self) -> None:
        """The speculative-decoding counters and the LoRA info gauge, registered only when they are in use."""
        g = self._reg.family
        if self.spec_tokens:
            one = self._v1_family
            one("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", "counter", "spec_drafts")
            one("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", "counter", "spec_draft_tokens")
            one("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", "counter", "spec_accepted")
            fam = g(
                "vllm:spec_decode_num_accepted_tokens_per_pos",
                "Accepted tokens per draft position.",
                "counter",
                (*self._v1_labels(), "position"),
                created=True,
            )
            for i, em in enumerate(self._ems):
                em.spec_per_pos = [
                    fam.child(self.model, str(i), str(pos), created=self._wall_ready) for pos in range(self.spec_tokens)
                ]
        if self.lora_adapters:
            self._lora_info = g(
                "vllm:lora_requests_info",
                "Running stats on lora requests.",
                "gauge",
                ("max_lora", "waiting_lora_adapters", "running_lora_adapters"),
            )

    def _v1_cache_config(self, keys: dict[str, str]) -> None:
        names = tuple(sorted({*keys, "engine"}))
        fam = self._reg.family("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", "gauge", names)
        for i in range(self.engines):
            info = {**keys, "engine": str(i)}
            fam.child(*(info[n] for n in names), value=1.0)

    def _v1_family(self, name: str, help_: str, kind: str, attr: str | None, *, nan: bool = False) -> Family:
        """A per-engine V1 family (with ``_created`` on counters) fed by the engine handle ``attr``.

        With ``attr`` None the family gets one child per engine that stays at zero.
        """
        fam = self._reg.family(name, help_, kind, self._v1_labels(), created=kind == "counter", nan=nan)
        if attr is None:
            for i in range(self.engines):
                fam.child(self.model, str(i), created=self._wall_ready)
        else:
            self._per_engine(fam, attr)
        return fam

    def _v1_kv_cache_families(self) -> None:
        """KV-cache usage and prefix-cache queries/hits, as every V1 generation exports them."""
        one = self._v1_family
        one("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", "gauge", "kv_usage", nan=True)
        one(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            "counter",
            "prefix_queries",
        )
        one(
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            "counter",
            "prefix_hits",
        )

    def _build_v110(self) -> None:
        one = self._v1_family
        one("vllm:num_requests_running", "Number of requests in model execution batches.", "gauge", "running", nan=True)
        one("vllm:num_requests_waiting", "Number of requests waiting to be processed.", "gauge", "waiting", nan=True)
        one(
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
            "gauge",
            "gpu_cache_usage",
            nan=True,
        )
        one(
            "vllm:gpu_prefix_cache_queries",
            "GPU prefix cache queries, in terms of number of queriedtokens. DEPRECATED: Use "
            "vllm:prefix_cache_queries instead.",
            "counter",
            "gpu_prefix_queries",
        )
        one(
            "vllm:gpu_prefix_cache_hits",
            "GPU prefix cache hits, in terms of number of cached tokens. DEPRECATED: Use vllm:prefix_cache_hits "
            "instead.",
            "counter",
            "gpu_prefix_hits",
        )
        self._v1_kv_cache_families()
        one("vllm:num_preemptions", "Cumulative number of preemption from the engine.", "counter", "preemptions")
        one("vllm:prompt_tokens", "Number of prefill tokens processed.", "counter", "prompt_tokens")
        one("vllm:generation_tokens", "Number of generation tokens processed.", "counter", "gen_tokens")
        self._v1_request_success()
        self._v1_histograms(v110=True)
        self._v1_spec_decode_and_lora()
        self._v1_cache_config(
            {
                "block_size": str(self._block),
                "gpu_memory_utilization": "0.9",
                "swap_space": "4",
                "cache_dtype": "auto",
                "is_attention_free": "False",
                "num_gpu_blocks_override": "None",
                "sliding_window": "None",
                "enable_prefix_caching": "True",
                "prefix_caching_hash_algo": "builtin",
                "cpu_offload_gb": "0",
                "calculate_kv_scales": "False",
                "kv_sharing_fast_prefill": "False",
                "mamba_cache_dtype": "auto",
                "mamba_ssm_cache_dtype": "auto",
                "num_gpu_blocks": str(self._num_gpu_blocks),
                "num_cpu_blocks": "None",
            }
        )

    def _build_v133(self) -> None:
        g = self._reg.family
        lab = self._v1_labels()
        wr = self._wall_ready

        one = self._v1_family
        mfu = "(for Model Flops Utilization calculations)."
        on = self.mfu_metrics  # without --enable-mfu-metrics the counters are registered and stay at zero
        one(
            "vllm:estimated_flops_per_gpu",
            f"Estimated number of floating point operations per GPU {mfu}",
            "counter",
            "flops" if on else None,
        )
        one(
            "vllm:estimated_read_bytes_per_gpu",
            f"Estimated number of bytes read from memory per GPU {mfu}",
            "counter",
            "read_bytes" if on else None,
        )
        one(
            "vllm:estimated_write_bytes_per_gpu",
            f"Estimated number of bytes written to memory per GPU {mfu}",
            "counter",
            "write_bytes" if on else None,
        )
        one("vllm:num_requests_running", "Number of requests in model execution batches.", "gauge", "running", nan=True)
        one("vllm:num_requests_waiting", "Number of requests waiting to be processed.", "gauge", "waiting", nan=True)
        fam = g(
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; "
            "'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of "
            "all reasons equals vllm:num_requests_waiting.",
            "gauge",
            (*lab, "reason"),
        )
        self._per_engine(fam, "wait_capacity", "capacity")
        self._per_engine(fam, "wait_deferred", "deferred")
        fam = g(
            "vllm:engine_sleep_state",
            "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
            "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
            "gauge",
            (*lab, "sleep_state"),
        )
        self._per_engine(fam, "sleep_awake", "awake")
        self._per_engine(fam, "sleep_l1", "weights_offloaded")
        self._per_engine(fam, "sleep_l2", "discard_all")
        self._v1_kv_cache_families()
        one(
            "vllm:external_prefix_cache_queries",
            "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of "
            "queried tokens.",
            "counter",
            None,
        )
        one(
            "vllm:external_prefix_cache_hits",
            "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of "
            "cached tokens.",
            "counter",
            None,
        )
        one("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items.", "counter", None)
        one("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items.", "counter", None)
        one("vllm:num_preemptions", "Cumulative number of preemption from the engine.", "counter", "preemptions")
        one("vllm:prompt_tokens", "Number of prefill tokens processed.", "counter", "prompt_tokens")
        fam = g(
            "vllm:prompt_tokens_by_source",
            "Number of prompt tokens by source.",
            "counter",
            (*lab, "source"),
            created=True,
        )
        self._per_engine(fam, "src_compute", "local_compute")
        self._per_engine(fam, "src_cache_hit", "local_cache_hit")
        for i in range(self.engines):
            fam.child(self.model, str(i), "external_kv_transfer", created=wr)
        one("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", "counter", "cached")
        fam = g(
            "vllm:prompt_tokens_cached_by_source",
            "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded "
            "to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at "
            "admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.",
            "counter",
            (*lab, "source"),
            created=True,
        )
        self._per_engine(fam, "cached_device", "device")
        for src in ("host", "p2p", "disk", "external_unspecified"):
            for i in range(self.engines):
                fam.child(self.model, str(i), src, created=wr)
        one("vllm:generation_tokens", "Number of generation tokens processed.", "counter", "gen_tokens")
        self._v1_request_success()
        fam = g(
            "vllm:admission_rejections",
            "Number of admission attempts rejected by a queue limit, by reason.",
            "counter",
            ("model_name", "reason"),
            created=True,
        )
        for reason in ("max_num_queued_reqs", "max_num_queued_tokens"):
            fam.child(self.model, reason, created=wr)
        self._v1_histograms(v110=False)
        self._v1_spec_decode_and_lora()
        kv_tokens = self._num_gpu_blocks * self._block
        self._v1_cache_config(
            {
                "_block_size_resolved": "True",
                "block_size": str(self._block),
                "cache_dtype": "auto",
                "cache_hit_alignment_tokens": "None",
                "effective_attention_block_size": "None",
                "enable_mamba_shared_prefix_checkpoint": "False",
                "enable_prefix_caching": "True",
                "gpu_memory_utilization": "0.92",
                "hash_block_size": "None",
                "is_attention_free": "False",
                "kv_cache_dtype_skip_layers": "[]",
                "kv_cache_layout": "None",
                "kv_cache_max_concurrency": f"{kv_tokens / self.max_model_len:.2f}",
                "kv_cache_memory_bytes": "None",
                "kv_cache_size_tokens": str(kv_tokens),
                "kv_offloading_backend": "native",
                "kv_offloading_size": "None",
                "kv_sharing_fast_prefill": "False",
                "mamba_block_size": "None",
                "mamba_cache_dtype": "auto",
                "mamba_cache_mode": "none",
                "mamba_page_size_padded": "None",
                "mamba_ssm_cache_dtype": "auto",
                "num_cpu_blocks": "None",
                "num_gpu_blocks": str(self._num_gpu_blocks),
                "num_gpu_blocks_override": "None",
                "prefix_cache_retention_interval": "0",
                "prefix_caching_hash_algo": "sha256",
                "prefix_match_unit": "None",
                "replayssm_buffer_len": "16",
                "simple_cpu_offload_num_blocks": "None",
                "skip_page_size_padded": "None",
                "sliding_window": "None",
                "swa_bounded_replay": "True",
                "use_kda_recoverssm": "False",
                "use_replayssm": "False",
                "user_specified_block_size": "False",
            }
        )

    def _build_http(self) -> None:
        """prometheus-fastapi-instrumentator's default families, as vLLM's V1 API server mounts them."""
        g = self._reg.family
        self._http_requests = g(
            "http_requests",
            "Total number of requests by method, status and handler.",
            "counter",
            ("method", "status", "handler"),
            created=True,
        )
        self._http_req_size = g(
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is respected. "
            "Otherwise ignored. No percentile calculated. ",
            "summary",
            ("handler",),
            created=True,
        )
        self._http_resp_size = g(
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            "summary",
            ("handler",),
            created=True,
        )
        highr = g(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
            "histogram",
            buckets=HTTP_HIGHR,
            created=True,
        )
        assert self.start_wall is not None
        self._http_highr: Hist = highr.child(created=self.start_wall + self.load_seconds + 3.5)
        self._http_duration = g(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
            "histogram",
            ("handler", "method"),
            buckets=HTTP_FEW,
            created=True,
        )
        self._http_on = True

    # ---- simulation -------------------------------------------------------------------------------------------

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the engine became ready."""
        return self._t

    def record_http(
        self, handler: str, method: str, status: int, duration: float, req_bytes: int, resp_bytes: int
    ) -> None:
        """Count one API request in the ``http_*`` families (V1 only; no-op for V0, as in real vLLM)."""
        if not self._http_on:
            return
        created = self._wall_ready + self._t
        self._http_requests.child(method, f"{status // 100}xx", handler, created=created).v += 1
        s = self._http_req_size.child(handler, created=created)
        s.count += 1
        s.sum += req_bytes
        s = self._http_resp_size.child(handler, created=created)
        s.count += 1
        s.sum += resp_bytes
        self._http_highr.observe(duration)
        self._http_duration.child(handler, method, created=created).observe(duration)

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds (integrated in slices of at most one second)."""
        if dt < 0:
            raise ValueError("dt must be >= 0")
        if self.dead:  # a dead engine core reports nothing new
            self._t += dt
            return
        remaining = dt
        while remaining > 1e-9:
            h = _SUBSTEP_S if remaining > _SUBSTEP_S else remaining
            self._substep(h)
            self._t += h
            remaining -= h

    def _substep(self, h: float) -> None:
        rng = self._rng
        t = self._t
        if self.bursts and t >= self._burst_until and rng.random() < h / 300.0:
            self._burst_until = t + rng.uniform(20.0, 90.0)
            self._burst_mult = rng.uniform(2.5, 6.0)
        mult = self._burst_mult if t < self._burst_until else 1.0
        rate = self._rps * (1.0 + 0.45 * math.sin(2 * math.pi * t / self._period + self._phase)) * mult
        if self.sleep_level:
            rate = 0.0
        busy = 0
        for eng in self._engines:
            self._engine_substep(eng, t, h, rate)
            busy += len(eng.running)
        if self._lora_info is not None:
            self._set_lora_info(t + h)
        if self._proc_on:
            self._cpu_acc += h * (0.2 + 0.004 * busy) * rng.uniform(0.8, 1.2)
            self._cpu.v = round(self._cpu_acc, 2)  # ProcessCollector's clock-tick resolution
            g0 = round_int(rng, h * (4.0 + 0.2 * busy))
            self._gc_collections[0].v += g0
            self._gc_collected[0].v += g0 * rng.randint(40, 110)
            if g0 and rng.random() < 0.09 * g0:
                self._gc_collections[1].v += 1
                self._gc_collected[1].v += rng.randint(50, 400)
                if rng.random() < 0.04:
                    self._gc_collections[2].v += 1
                    self._gc_collected[2].v += rng.randint(100, 900)
            self._rss.v = self._rss_base + float(rng.randint(0, 4096) * 4096)
            self._fds.v = float(70 + busy // 2 + rng.randint(0, 6))

    def _new_request(self, arrival: float) -> Req:
        rng = self._rng
        mml = self.max_model_len
        r = Req()
        r.arrival = arrival
        prompt = int(rng.lognormvariate(self._mu_prompt, 0.95))
        prompt = min(max(prompt, 4), mml - 8)
        r.prompt = prompt
        u = rng.random()
        if u < 0.16:
            r.max_tokens = None
        elif u < 0.30:
            r.max_tokens = 512
        elif u < 0.60:
            r.max_tokens = 1024
        elif u < 0.85:
            r.max_tokens = 2048
        else:
            r.max_tokens = 4096
        room = mml - prompt
        r.limit = min(r.max_tokens, room) if r.max_tokens is not None else room
        natural = max(1, int(rng.lognormvariate(self._mu_gen, 0.85)))
        if natural >= r.limit:
            r.stop_at, r.reason = r.limit, "length"
        else:
            r.stop_at, r.reason = natural, "stop"
        x = rng.random()
        r.aborting = x < 0.01
        if r.aborting:
            r.stop_at = rng.randint(1, r.stop_at)
        elif x < 0.0106 and "error" in self._reasons:
            r.reason = "error"
        # a draw only while the knob is on: the seeded baseline stays the same sequence
        if self.error_share > 0 and not r.aborting and "error" in self._reasons and rng.random() < self.error_share:
            r.reason = "error"
        r.n = 2 if rng.random() < 0.015 else 1
        if self._prefix_caching and rng.random() < self._hit_share:
            r.hits = int(prompt * rng.uniform(0.3, 0.95)) // self._block * self._block
        else:
            r.hits = 0
        r.handler = "/v1/chat/completions" if rng.random() < 0.95 else "/v1/completions"
        if self.lora_adapters and rng.random() < 0.5:
            r.lora = self.lora_adapters[min(int(rng.expovariate(1.0)), len(self.lora_adapters) - 1)]  # a few hot
        r.req_bytes = 220 + 4 * prompt + rng.randint(0, 200)
        return r

    def _engine_substep(self, eng: Engine, t: float, h: float, rate: float) -> None:
        """Advance one engine by ``h`` seconds from ``t``: arrivals, scheduling, decode, preemption, gauges."""
        self._arrive(eng, t, h, rate)
        batch, prefill_tokens = self._schedule(eng, t)
        itl = eng.base_itl * (1.0 + batch / 96.0) * self._rng.uniform(0.92, 1.08)
        self._decode(eng, t + h, itl)
        if batch:
            steps = max(1, int(h / itl))
            psteps = min(steps, -(-prefill_tokens // eng.chunk)) if prefill_tokens else 0
            if psteps:
                eng.em.h_iter.observe(min(eng.chunk, prefill_tokens / psteps) + batch, psteps)
            eng.em.h_iter.observe(float(len(eng.running)), steps - psteps)
            if self.mfu_metrics:
                self._estimate_work(eng.em, prefill_tokens + batch * steps, steps, batch)
        self._preempt(eng)
        self._set_gauges(eng, h)

    def _arrive(self, eng: Engine, t: float, h: float, rate: float) -> None:
        """Poisson arrivals over ``[t, t + h)``; a few are rejected by request validation before the engine."""
        rng = self._rng
        for _ in range(poisson(rng, rate * h)):
            arrival = t + rng.random() * h
            if rng.random() < 0.004:
                self.record_http(
                    "/v1/chat/completions", "POST", 400, 0.002 + rng.random() * 0.01, 300 + rng.randint(0, 4000), 160
                )
                continue
            eng.waiting.append(self._new_request(arrival))

    def _schedule(self, eng: Engine, t: float) -> tuple[int, int]:
        """Admit waiting requests while seats and KV blocks last; the batch size and the tokens to prefill."""
        rng = self._rng
        kv = eng.kv_used
        batch = len(eng.running)
        prefill_tokens = 0
        loras = {x.lora for x in eng.running if x.lora}
        deferred: list[Req] = []  # skipped, as vLLM does, while every LoRA slot holds another adapter
        while eng.waiting and batch < eng.max_seqs and not self.stalled:
            r = eng.waiting[0]
            need = eng.blocks(r.prompt + r.gen + 1)
            if kv + need > eng.kv_cap:
                break
            eng.waiting.popleft()
            if r.lora and r.lora not in loras and len(loras) >= self.max_loras:
                deferred.append(r)
                continue
            if r.lora:
                loras.add(r.lora)
            at = max(t, r.arrival) + 0.001 + rng.random() * 0.004
            if r.sched < 0:  # first admission
                r.sched = at
                compute = r.prompt - r.hits
                self._count_prompt(eng, r, compute)
            else:  # resumed after preemption: recompute everything
                compute = r.prompt + r.gen
            prefill_tokens += compute
            r.next_tok = at + compute / eng.prefill_tps * (1.0 + batch / 256.0) * self.prefill_slowdown + 0.004
            kv += need
            eng.running.append(r)
            batch += 1
        eng.waiting.extendleft(reversed(deferred))
        return batch, prefill_tokens

    @staticmethod
    def _count_prompt(eng: Engine, r: Req, compute: int) -> None:
        """The prompt and prefix-cache counters of a request's first admission."""
        em = eng.em
        em.prompt_tokens.v += r.prompt
        em.prefix_queries.v += r.prompt
        em.prefix_hits.v += r.hits
        em.gpu_prefix_queries.v += r.prompt
        em.gpu_prefix_hits.v += r.hits
        em.src_compute.v += compute
        em.src_cache_hit.v += r.hits
        em.cached.v += r.hits
        em.cached_device.v += r.hits
        eng.tp_prompt += r.prompt

    def _decode(self, eng: Engine, end: float, itl: float) -> None:
        """Generate the tokens due before ``end`` at one token per ``itl``; finish requests that reach their stop."""
        em = eng.em
        produced = 0
        itl_obs = 0
        done: list[Req] = []
        for r in eng.running:
            nt = r.next_tok
            if nt >= end:
                continue
            k = 1 + int((end - nt) / itl)
            rem = r.stop_at - r.gen
            finished = k >= rem
            if finished:
                k = rem
            if r.gen == 0:
                r.first = nt
                em.h_ttft.observe(nt - r.arrival)
                itl_obs += k - 1
            else:
                itl_obs += k
            r.gen += k
            produced += k
            r.next_tok = nt + k * itl
            if finished:
                r.next_tok -= itl  # time of the last token
                done.append(r)
        if done:
            eng.running = [r for r in eng.running if r.gen < r.stop_at]
            for r in done:
                self._finish(em, r)
        em.gen_tokens.v += produced
        eng.tp_gen += produced
        if self.spec_tokens and produced:
            self._speculate(em, produced)
        if itl_obs:
            slow = itl_obs // 12
            slow_itl = itl * self._rng.uniform(1.6, 3.0)
            for hist in (em.h_itl, em.h_tpot):
                hist.observe(itl, itl_obs - slow)
                hist.observe(slow_itl, slow)

    def _preempt(self, eng: Engine) -> None:
        """KV accounting; preempt the newest requests first (vLLM's recompute policy) while the cache overflows."""
        running = eng.running
        blocks = eng.blocks
        kv = sum(blocks(r.prompt + r.gen) for r in running)
        forced = self.force_preemption
        while (kv > eng.kv_cap or forced) and len(running) > 1:
            forced = False
            victim = running.pop()
            kv -= blocks(victim.prompt + victim.gen)
            victim.preempt += 1
            eng.em.preemptions.v += 1
            eng.waiting.appendleft(victim)
        eng.kv_used = kv

    def _set_gauges(self, eng: Engine, h: float) -> None:
        """The engine's gauges after a step of ``h`` seconds."""
        em = eng.em
        em.running.v = float(len(eng.running))
        waiting = float(len(eng.waiting))
        em.waiting.v = waiting
        loras = {r.lora for r in eng.running if r.lora}
        deferred = (
            float(sum(1 for r in eng.waiting if r.lora and r.lora not in loras))
            if len(loras) >= self.max_loras
            else 0.0
        )
        em.wait_capacity.v = waiting - deferred
        em.wait_deferred.v = deferred
        usage = min(1.0, max(eng.kv_used / eng.kv_cap, self.kv_usage_floor))
        em.kv_usage.v = usage
        em.gpu_cache_usage.v = usage
        asleep = self.sleep_level > 0
        em.sleep_awake.v = 0.0 if asleep else 1.0
        em.sleep_l1.v = 1.0 if self.sleep_level == 1 else 0.0
        em.sleep_l2.v = 1.0 if self.sleep_level >= 2 else 0.0
        eng.tp_elapsed += h
        if eng.tp_elapsed >= 5.0:  # V0 logs (and sets its throughput gauges) every 5 s
            em.avg_prompt_tp.v = round(eng.tp_prompt / eng.tp_elapsed, 1)
            em.avg_gen_tp.v = round(eng.tp_gen / eng.tp_elapsed, 1)
            eng.tp_prompt = eng.tp_gen = 0
            eng.tp_elapsed = 0.0

    def _finish(self, em: EngineMetrics, r: Req) -> None:
        fin = r.next_tok
        e2e = fin - r.arrival
        out_bytes = 300 + 4 * r.gen
        self.record_http(r.handler, "POST", 200, e2e + 0.002, r.req_bytes, out_bytes)
        if r.aborting:  # aborted requests reach neither request_success nor the per-request histograms
            return
        em.success_child(r.reason).v += 1
        decode = fin - r.first
        em.h_e2e.observe(e2e)
        em.h_queue.observe(r.sched - r.arrival)
        em.h_inference.observe(fin - r.sched)
        em.h_prefill.observe(r.first - r.sched)
        em.h_decode.observe(decode)
        em.h_prompt.observe(r.prompt)
        em.h_gen.observe(r.gen)
        em.h_max_gen.observe(r.limit)
        em.h_n.observe(r.n)
        em.h_best_of.observe(r.n)
        if r.max_tokens is not None:
            em.h_max_tokens.observe(r.max_tokens)
        em.h_req_tpot.observe(decode / (r.gen - 1) if r.gen > 1 else 0.0)
        em.h_prefill_per_tok.observe((r.first - r.sched) / r.prompt)
        em.h_num_preempt.observe(r.preempt)
        em.h_prefill_kv.observe(r.prompt - r.hits)

    def _speculate(self, em: EngineMetrics, produced: int) -> None:
        """Drafts behind ``produced`` tokens: position i is accepted with alpha^(i+1); each draft adds a bonus token."""
        rng = self._rng
        k = self.spec_tokens
        alpha = self._spec_alpha
        drafts = round_int(rng, produced / (1.0 + sum(alpha ** (i + 1) for i in range(k))))
        if not drafts:
            return
        accepted = 0
        previous = drafts
        for pos in range(k):
            at_pos = min(previous, round_int(rng, drafts * alpha ** (pos + 1) * rng.uniform(0.95, 1.05)))
            if pos < len(em.spec_per_pos):
                em.spec_per_pos[pos].v += at_pos
            accepted += at_pos
            previous = at_pos
        em.spec_drafts.v += drafts
        em.spec_draft_tokens.v += drafts * k
        em.spec_accepted.v += accepted
        em.spec_emitted.v += accepted + drafts
        em.spec_accept_rate.v = em.spec_accepted.v / em.spec_draft_tokens.v  # V0's gauges: since the start
        em.spec_efficiency.v = em.spec_emitted.v / (em.spec_drafts.v * (k + 1))

    _KV_BYTES_PER_TOKEN = 147_456.0  # Qwen3-8B-like: 36 layers x 8 KV heads x 128 dims x (K, V) x 2 bytes

    def _estimate_work(self, em: EngineMetrics, tokens: int, steps: int, batch: int) -> None:
        """``--enable-mfu-metrics``: 2 FLOPs per parameter per token; each step reads the weights once (bf16)."""
        em.flops.v += 2.0 * self.params * tokens
        em.read_bytes.v += steps * 2.0 * self.params + tokens * self._KV_BYTES_PER_TOKEN * min(batch, 64) / 8.0
        em.write_bytes.v += tokens * self._KV_BYTES_PER_TOKEN

    def _set_lora_info(self, t: float) -> None:
        """vLLM sets the series of the current (waiting, running) adapter sets to the current time."""
        running = sorted({r.lora for eng in self._engines for r in eng.running if r.lora})
        waiting = sorted({r.lora for eng in self._engines for r in eng.waiting if r.lora})
        assert self._lora_info is not None
        child = self._lora_info.child(str(self.max_loras), ",".join(waiting), ",".join(running))
        child.v = round(self._wall_ready + t, 3)

    # ---- views --------------------------------------------------------------------------------------------------

    def render_metrics(self, *, nan: bool = False) -> bytes:
        """The ``/metrics`` body for the current state, shaped like this generation's exposition.

        Args:
            nan: put NaN/+Inf into the engine gauges (the ``nan`` fault).
        """
        return self._reg.render(nan=nan)

    def models_body(self) -> bytes:
        """The ``/v1/models`` body as vLLM sends it (compact JSON, ModelCard fields in vLLM's order)."""
        created = int(time.time())
        root = self.model if self.generation is VllmGeneration.V0_5 else self.root
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": root,
                "parent": None,
                "max_model_len": self.max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{uuid.uuid4().hex[:16]}",
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in (self.model, *self.extra_models)
        ]
        return json.dumps({"object": "list", "data": data}, separators=(",", ":"), ensure_ascii=False).encode()

    def version_body(self) -> bytes:
        """The ``/version`` body, e.g. ``{"version":"0.33.0"}``."""
        return json.dumps({"version": self.version}, separators=(",", ":")).encode()

    # ---- HTTP-layer helpers ------------------------------------------------------------------------------------

    def touch(self, now: float) -> None:
        if self.started_at is None:
            self.started_at = now

    def loading(self, now: float) -> bool:
        return self.started_at is not None and now < self.started_at + self.load_seconds

    def advance(self, now: float) -> None:
        """Step by the real time elapsed since the last advance (bounded); no-op while loading."""
        if self.started_at is None:
            self.started_at = now
        ready = self.started_at + self.load_seconds
        if now < ready:
            return
        if self._last_clock is None:
            self._last_clock = ready
        dt = now - self._last_clock
        if dt < _MIN_ADVANCE_S:
            return
        self._last_clock = now
        self.step(min(dt, _MAX_CATCHUP_S))

    def metrics_at(self, now: float) -> bytes:
        """The body, re-rendered at most once per :data:`_RENDER_MIN_INTERVAL_S`."""
        if self._cache is None or now - self._cache_at >= _RENDER_MIN_INTERVAL_S:
            self.advance(now)
            self._cache = self.render_metrics()
            self._cache_at = now
        return self._cache

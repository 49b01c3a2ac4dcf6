"""Per-engine metric handles and simulation state of a simulated vLLM instance."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable

from inferwatch.simulators.vllm.registry import Hist, Num

_HANDLE_NAMES = (
    "running",
    "waiting",
    "wait_capacity",
    "wait_deferred",
    "sleep_awake",
    "sleep_l1",
    "sleep_l2",
    "kv_usage",
    "gpu_cache_usage",
    "cpu_cache_usage",
    "swapped",
    "prefix_queries",
    "prefix_hits",
    "gpu_prefix_queries",
    "gpu_prefix_hits",
    "preemptions",
    "prompt_tokens",
    "gen_tokens",
    "src_compute",
    "src_cache_hit",
    "cached",
    "cached_device",
    "avg_prompt_tp",
    "avg_gen_tp",
    "h_prompt",
    "h_gen",
    "h_iter",
    "h_max_gen",
    "h_n",
    "h_best_of",
    "h_max_tokens",
    "h_ttft",
    "h_tpot",
    "h_itl",
    "h_req_tpot",
    "h_prefill_per_tok",
    "h_e2e",
    "h_queue",
    "h_inference",
    "h_prefill",
    "h_decode",
    "h_num_preempt",
    "h_prefill_kv",
    "spec_drafts",
    "spec_draft_tokens",
    "spec_accepted",
    "spec_emitted",
    "spec_accept_rate",
    "spec_efficiency",
    "flops",
    "read_bytes",
    "write_bytes",
)


class EngineMetrics:
    """Direct references to one engine's children; families a generation lacks get detached dummies."""

    def __init__(self) -> None:
        for name in _HANDLE_NAMES:
            setattr(self, name, Hist(()) if name.startswith("h_") else Num())
        self.success: dict[str, Num] = {}
        self.success_factory: Callable[[str], Num] | None = None
        self.spec_per_pos: list[Num] = []  # accepted tokens per draft position (V1 speculative decoding)

    def success_child(self, reason: str) -> Num:
        c = self.success.get(reason)
        if c is None:
            c = self.success_factory(reason) if self.success_factory is not None else Num()
            self.success[reason] = c
        return c

    # attribute declarations for type checkers
    running: Num
    waiting: Num
    wait_capacity: Num
    wait_deferred: Num
    sleep_awake: Num
    sleep_l1: Num
    sleep_l2: Num
    kv_usage: Num
    gpu_cache_usage: Num
    cpu_cache_usage: Num
    swapped: Num
    prefix_queries: Num
    prefix_hits: Num
    gpu_prefix_queries: Num
    gpu_prefix_hits: Num
    preemptions: Num
    prompt_tokens: Num
    gen_tokens: Num
    src_compute: Num
    src_cache_hit: Num
    cached: Num
    cached_device: Num
    avg_prompt_tp: Num
    avg_gen_tp: Num
    h_prompt: Hist
    h_gen: Hist
    h_iter: Hist
    h_max_gen: Hist
    h_n: Hist
    h_best_of: Hist
    h_max_tokens: Hist
    h_ttft: Hist
    h_tpot: Hist
    h_itl: Hist
    h_req_tpot: Hist
    h_prefill_per_tok: Hist
    h_e2e: Hist
    h_queue: Hist
    h_inference: Hist
    h_prefill: Hist
    h_decode: Hist
    h_num_preempt: Hist
    h_prefill_kv: Hist
    spec_drafts: Num
    spec_draft_tokens: Num
    spec_accepted: Num
    spec_emitted: Num
    spec_accept_rate: Num
    spec_efficiency: Num
    flops: Num
    read_bytes: Num
    write_bytes: Num


class Req:
    """One simulated request."""

    __slots__ = (
        "aborting",
        "arrival",
        "first",
        "gen",
        "handler",
        "hits",
        "limit",
        "lora",
        "max_tokens",
        "n",
        "next_tok",
        "preempt",
        "prompt",
        "reason",
        "req_bytes",
        "sched",
        "stop_at",
    )

    aborting: bool
    arrival: float
    first: float  # time of the first output token
    gen: int  # tokens generated so far
    handler: str
    hits: int  # prompt tokens served from the prefix cache
    limit: int  # max generation tokens (max_tokens, or what fits in max_model_len)
    lora: str  # LoRA adapter the request asks for, "" for the base model
    max_tokens: int | None
    n: int
    next_tok: float  # time the next token is (or the last token was) produced
    preempt: int
    prompt: int
    reason: str
    req_bytes: int
    sched: float  # first admission time
    stop_at: int  # token count at which the request ends (finishes or is aborted)

    def __init__(self) -> None:
        self.sched = -1.0
        self.first = -1.0
        self.next_tok = 0.0
        self.gen = 0
        self.preempt = 0
        self.lora = ""


class Engine:
    """One data-parallel engine core: a scheduler with a waiting queue, a running batch and a KV-cache budget."""

    def __init__(
        self,
        em: EngineMetrics,
        kv_cap: int,
        block: int,
        max_seqs: int,
        base_itl: float,
        prefill_tps: float,
        chunk: int,
    ) -> None:
        self.em = em
        self.kv_cap = kv_cap
        self.block = block
        self.max_seqs = max_seqs
        self.base_itl = base_itl
        self.prefill_tps = prefill_tps
        self.chunk = chunk
        self.waiting: deque[Req] = deque()
        self.running: list[Req] = []
        self.kv_used = 0
        self.tp_prompt = 0
        self.tp_gen = 0
        self.tp_elapsed = 0.0

    def blocks(self, tokens: int) -> int:
        b = self.block
        return -(-tokens // b) * b


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def round_int(rng: random.Random, x: float) -> int:
    """Unbiased stochastic rounding."""
    return int(x + rng.random())

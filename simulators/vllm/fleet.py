"""Fleets of simulated instances, the demo hook and the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from inferwatch.simulators.vllm.instance import SimulatedVllm, VllmGeneration
from inferwatch.simulators.vllm.server import serve

if TYPE_CHECKING:
    from inferwatch.simulators.demo import Demo
    from inferwatch.simulators.scenarios import Scenario


def demo_fleet() -> list[SimulatedVllm]:
    """Four instances for the demo: one per generation; the 0.10 one loads for 20 s first.

    The 0.33 one runs speculative decoding (3 tokens) with ``--enable-mfu-metrics`` and serves three LoRA
    adapters (``--max-loras 4``); the 0.5 one has a draft model (4 tokens).
    """
    return [
        SimulatedVllm(
            "qwen3-8b",
            "Qwen/Qwen3-8B",
            VllmGeneration.V1,
            "0.33.0",
            max_model_len=32768,
            engines=2,
            seed=1,
            spec_tokens=3,
            mfu_metrics=True,
            params=8.2e9,
            lora_adapters=["sql-expert", "support-bot", "summarizer"],
        ),
        SimulatedVllm(
            "llama-3.1-8b-instruct",
            "meta-llama/Llama-3.1-8B-Instruct",
            VllmGeneration.V1_10,
            "0.10.1",
            max_model_len=16384,
            load_seconds=20.0,
            seed=2,
        ),
        SimulatedVllm(
            "mistral-7b-instruct",
            "mistralai/Mistral-7B-Instruct-v0.3",
            VllmGeneration.V0_6,
            "0.6.3.post1",
            max_model_len=8192,
            seed=3,
        ),
        SimulatedVllm(
            "llama-2-13b-chat",
            "meta-llama/Llama-2-13b-chat-hf",
            VllmGeneration.V0_5,
            "0.5.3.post1",
            max_model_len=4096,
            seed=4,
            rps=0.5,
            spec_tokens=4,
            params=13.0e9,
        ),
    ]


_FLEET_MODELS = (
    ("qwen3-8b", "Qwen/Qwen3-8B", 32768),
    ("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", 16384),
    ("mistral-7b-instruct", "mistralai/Mistral-7B-Instruct-v0.3", 8192),
    ("qwen2.5-32b-instruct", "Qwen/Qwen2.5-32B-Instruct", 32768),
    ("gemma-3-12b-it", "google/gemma-3-12b-it", 8192),
)
_FLEET_VERSIONS = (
    (VllmGeneration.V1, "0.33.0"),
    (VllmGeneration.V1, "0.33.0"),
    (VllmGeneration.V1_10, "0.10.1"),
    (VllmGeneration.V0_6, "0.6.3.post1"),
    (VllmGeneration.V0_5, "0.5.3.post1"),
)


def make_fleet(count: int, seed: int = 0) -> list[SimulatedVllm]:
    """``count`` instances: :func:`demo_fleet` first, then a deterministic mix of models and generations."""
    fleet = demo_fleet()[:count]
    rng = random.Random(seed)
    for i in range(len(fleet), count):
        model, root, mml = _FLEET_MODELS[i % len(_FLEET_MODELS)]
        gen, version = _FLEET_VERSIONS[rng.randrange(len(_FLEET_VERSIONS))]
        engines = 2 if gen is VllmGeneration.V1 and rng.random() < 0.25 else 1
        fleet.append(
            SimulatedVllm(model, root, gen, version, max_model_len=mml, engines=engines, seed=seed * 100_003 + i)
        )
    return fleet


def demo_scenarios(fleet: list[SimulatedVllm], urls: list[str]) -> list[Scenario]:
    """The alert scenarios of :func:`demo_fleet` (served at ``urls``): one instance or knob per rule."""
    from inferwatch.simulators.scenarios import Scenario

    qwen, llama31, mistral, llama2 = fleet[:4]

    def knob(inst: SimulatedVllm, attr: str, on: object, off: object) -> tuple[Callable[[], None], Callable[[], None]]:
        return (lambda: setattr(inst, attr, on)), (lambda: setattr(inst, attr, off))

    specs = [
        (
            "vllm_target_down",
            "VllmTargetDown",
            urls[3],
            knob(llama2, "fault", "500", None),
            "llama-2-13b-chat's /metrics answers 500 Internal Server Error",
        ),
        (
            "vllm_queue_backlog",
            "VllmQueueBacklog",
            urls[0],
            knob(qwen, "stalled", True, False),
            "qwen3-8b's scheduler admits nothing: arrivals pile up in the waiting queue",
        ),
        (
            "vllm_kv_cache_saturated",
            "VllmKvCacheSaturated",
            urls[2],
            knob(mistral, "kv_usage_floor", 0.99, 0.0),
            "mistral-7b-instruct's KV cache is 99 % held (leaked blocks)",
        ),
        (
            "vllm_preemptions",
            "VllmPreemptions",
            urls[2],
            knob(mistral, "force_preemption", True, False),
            "mistral-7b-instruct's scheduler preempts a running request every second",
        ),
        (
            "vllm_ttft_high",
            "VllmTtftHigh",
            urls[1],
            # 20x: p95 TTFT above 2 s within 12 s of the start, and the queue it builds drains within 22 s of the
            # end (steady traffic, at 1-15 s scrape steps, any start in the first 5 minutes); 30x took up to 28 s,
            # and with a traffic burst on top up to 51 s
            knob(llama31, "prefill_slowdown", 20.0, 1.0),
            "llama-3.1-8b-instruct's prefill runs 20 times slower (time to first token of seconds)",
        ),
    ]
    scenarios = [
        Scenario(name, alert, description, start, stop, labels={"target": url})
        for name, alert, url, (start, stop), description in specs
    ]
    start, stop = knob(qwen, "error_share", 0.5, 0.0)
    scenarios.append(
        Scenario(
            "slo_error_burn",
            "SloErrorBudgetBurn",
            "half of qwen3-8b's requests end with finished_reason error: the vllm-availability SLO (99 %) burns its "
            "error budget 50 times too fast, which fires every burn-rate pair once the windows fill",
            start,
            stop,
            labels={"slo": "vllm-availability", "model_name": qwen.model},
        )
    )
    return scenarios


async def start_demo() -> Demo:
    """Hook for ``python -m inferwatch.simulators``: serve :func:`demo_fleet` (plus ``INFERWATCH_DEMO_VLLM_EXTRA`` more)
    and point the vLLM scraper at it."""
    from inferwatch.simulators.demo import Demo
    from inferwatch.simulators.scenarios import CALM_ENV

    # INFERWATCH_DEMO_VLLM_EXTRA: more simulated servers beyond the four of the demo (a soak at scale)
    extra = max(int(os.environ.get("INFERWATCH_DEMO_VLLM_EXTRA", "0") or 0), 0)
    fleet = make_fleet(len(demo_fleet()) + extra)
    if os.environ.get(CALM_ENV) == "1":  # steady traffic: a chance burst would build a queue no scenario asked for
        for inst in fleet:
            inst.bursts = False
    pairs = await serve(fleet)
    urls = [url for url, _ in pairs]
    return Demo(
        env={"INFERWATCH_VLLM_TARGETS": ",".join(urls)}, runners=[pairs[0][1]], scenarios=demo_scenarios(fleet, urls)
    )


async def _run(count: int, host: str, port_base: int, seed: int, api_key: str | None) -> None:
    fleet = make_fleet(count, seed)
    t0 = time.perf_counter()
    pairs = await serve(fleet, host, port_base, api_key=api_key)
    took = time.perf_counter() - t0
    for (url, _), inst in zip(pairs, fleet, strict=True):
        print(f"{url}\t{inst.version}\t{inst.model}", flush=True)
    print(f"# {len(pairs)} simulated vLLM servers up in {took:.2f} s; Ctrl-C to stop", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if pairs:
            await pairs[0][1].cleanup()


def main(argv: list[str] | None = None) -> None:
    """``python -m inferwatch.simulators.vllm --count N --port-base P``: serve N simulated servers, print their URLs."""
    parser = argparse.ArgumentParser(
        prog="python -m inferwatch.simulators.vllm", description="Serve simulated vLLM servers and print their URLs."
    )
    parser.add_argument("--count", type=int, default=4, help="number of instances (default 4: the demo fleet)")
    parser.add_argument("--port-base", type=int, default=0, help="first port; 0 picks free ports (default)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require this bearer token on /v1/models")
    args = parser.parse_args(argv)
    asyncio.run(_run(args.count, args.host, args.port_base, args.seed, args.api_key))

"""Record the simulated vLLM expositions of the families no recorded real server emits.

A real vLLM emits speculative decoding only with a draft model or method, ``lora_requests_info`` only with LoRA
adapters, and moves the ``estimated_*_per_gpu`` counters only with ``--enable-mfu-metrics`` on a GPU; the simulator
(`simulators/vllm`) emits them in the generations that have them. Each file starts with comment lines naming the
simulated launch. Deterministic: the same seeds and start time give the same bytes, so ``--check`` (a test runs it)
fails when the simulator changes them.

Run: .venv/bin/python -m scripts.record_vllm_sim_fixtures [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "vllm"
START = 1_796_000_000.0  # a fixed "process start" so _created values and LoRA timestamps do not move
SIMULATED_S = 900.0


def _instances() -> dict[str, tuple[str, SimulatedVllm]]:
    return {
        "simulated-0.33-spec-decode-mfu-lora.txt": (
            "vllm serve Qwen/Qwen3-8B --served-model-name qwen3-8b --max-model-len 32768 --data-parallel-size 2 "
            '--speculative-config \'{"method": "ngram", "num_speculative_tokens": 3}\' --enable-mfu-metrics '
            "--enable-lora --max-loras 1 --lora-modules sql-expert=… support-bot=…",
            SimulatedVllm(
                "qwen3-8b",
                "Qwen/Qwen3-8B",
                VllmGeneration.V1,
                "0.33.0",
                max_model_len=32768,
                engines=2,
                seed=11,
                start_wall=START,
                spec_tokens=3,
                mfu_metrics=True,
                params=8.2e9,
                lora_adapters=["sql-expert", "support-bot"],
                max_loras=1,
            ),
        ),
        "simulated-0.10-lora.txt": (
            "vllm serve meta-llama/Llama-3.1-8B-Instruct --served-model-name llama-3.1-8b-instruct "
            "--max-model-len 16384 --enable-lora --max-loras 2 --lora-modules sql-expert=… support-bot=… summarizer=…",
            SimulatedVllm(
                "llama-3.1-8b-instruct",
                "meta-llama/Llama-3.1-8B-Instruct",
                VllmGeneration.V1_10,
                "0.10.1",
                max_model_len=16384,
                seed=16,
                start_wall=START,
                lora_adapters=["sql-expert", "support-bot", "summarizer"],
                max_loras=2,
            ),
        ),
        "simulated-0.5.3-spec-decode.txt": (
            "python -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-2-13b-chat-hf "
            "--served-model-name llama-2-13b-chat --max-model-len 4096 --speculative-model <draft> "
            "--num-speculative-tokens 4",
            SimulatedVllm(
                "llama-2-13b-chat",
                "meta-llama/Llama-2-13b-chat-hf",
                VllmGeneration.V0_5,
                "0.5.3.post1",
                max_model_len=4096,
                seed=13,
                start_wall=START,
                rps=0.5,
                spec_tokens=4,
                params=13.0e9,
            ),
        ),
    }


def render() -> dict[str, bytes]:
    """Every fixture's bytes: a comment header, then the exposition after ``SIMULATED_S`` simulated seconds."""
    out: dict[str, bytes] = {}
    for name, (launch, instance) in _instances().items():
        instance.step(SIMULATED_S)
        header = (
            f"# Simulated vLLM {instance.version} (simulators/vllm, scripts/record_vllm_sim_fixtures.py), "
            f"{SIMULATED_S:.0f} s of traffic after start.\n# Imitated launch: {launch}\n"
        )
        out[name] = header.encode() + instance.render_metrics()
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the fixtures, or with ``--check`` report the ones that differ."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, body in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_bytes() != body:
                stale.append(name)
        else:
            path.write_bytes(body)
    for name in stale:
        print(f"stale: tests/fixtures/vllm/{name}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

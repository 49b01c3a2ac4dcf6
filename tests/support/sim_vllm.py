"""Building and reading the vLLM simulator in tests: one instance per generation, its samples."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration

VERSIONS = {
    VllmGeneration.V0_5: "0.5.3.post1",
    VllmGeneration.V0_6: "0.6.3.post1",
    VllmGeneration.V1_10: "0.10.1",
    VllmGeneration.V1: "0.33.0",
}
"""The vLLM release each simulated generation imitates."""
START_WALL = 1_795_507_200.27
"""A fixed wall clock start, so bodies are reproducible."""


def make(gen: VllmGeneration, **kw: object) -> SimulatedVllm:
    """A seeded Qwen3-8B instance of generation ``gen`` (``kw`` overrides the simulator's settings)."""
    kw.setdefault("seed", 7)
    kw.setdefault("start_wall", START_WALL)
    return SimulatedVllm("qwen3-8b", "Qwen/Qwen3-8B", gen, VERSIONS[gen], **kw)  # type: ignore[arg-type]


def parse(body: bytes | str) -> dict[str, object]:
    """An exposition body's families by name, as prometheus_client parses them."""
    text = body.decode() if isinstance(body, bytes) else body
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(body: bytes) -> list[Sample]:
    """Every sample of an exposition body, as prometheus_client parses it."""
    return [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]

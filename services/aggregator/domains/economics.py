"""The unit-economics gauges per model (`services.aggregator.economics` computes them over its window).

No event renders these: the tracker joins GPU, vLLM and LiteLLM snapshots, so its figures are written once
per scrape by `render_economics`. Money carries its currency in the name; energy is in joules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from inferwatch.services.aggregator.economics import ModelEconomics
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block

COST_PER_MILLION = Family(
    "inferwatch_model_self_hosted_cost_usd_per_million_tokens",
    "gauge",
    "Self-hosted cost (GPU-hour price + energy) per million tokens over the economics window, by direction "
    "(input, output: split by prefill/decode time; total). Absent without a configured price.",
)
ENERGY_PER_MILLION = Family(
    "inferwatch_model_energy_joules_per_million_tokens",
    "gauge",
    "GPU energy per million tokens (input + output) over the economics window.",
)
TOKENS_PER_GPU_SECOND = Family(
    "inferwatch_model_tokens_per_gpu_second",
    "gauge",
    "Tokens per attributed GPU-second over the economics window, by direction (input, output, total).",
)
API_PRICE_PER_MILLION = Family(
    "inferwatch_model_api_price_usd_per_million_tokens",
    "gauge",
    "The compared LiteLLM route's configured price per million tokens (mean over its deployments), by route and "
    "direction (input, output), for comparison with the self-hosted cost.",
)
ATTRIBUTED_GPUS = Family(
    "inferwatch_model_attributed_gpus",
    "gauge",
    "Mean GPUs attributed to the model over the economics window (shared GPUs count by their share).",
)
ATTRIBUTED_POWER = Family(
    "inferwatch_model_attributed_power_watts",
    "gauge",
    "Mean power drawn by the model's GPU shares over the economics window.",
)
WINDOW = Family(
    "inferwatch_model_economics_window_seconds",
    "gauge",
    "How much of the configured economics window the model's figures cover so far.",
)


def render_economics(figures: Iterable[ModelEconomics]) -> Mapping[Family, str]:
    """The gauges of every model's figures."""
    w = SeriesWriter()
    for fig in figures:
        model = fig.model
        labels = label_block({"model_name": model})
        w.gauge(WINDOW, labels, fig.span_s)
        w.gauge(ATTRIBUTED_GPUS, labels, fig.gpus)
        w.gauge(ATTRIBUTED_POWER, labels, fig.power_watts)
        w.gauge(ENERGY_PER_MILLION, labels, fig.energy_joules_per_million_tokens)
        for direction, value in fig.tokens_per_gpu_second.items():
            w.gauge(TOKENS_PER_GPU_SECOND, label_block({"model_name": model, "direction": direction}), value)
        for direction, value in fig.cost_usd_per_million_tokens.items():
            w.gauge(COST_PER_MILLION, label_block({"model_name": model, "direction": direction}), value)
        for direction, value in fig.api_usd_per_million_tokens.items():
            route_labels = label_block({"model_name": model, "route": fig.api_route, "direction": direction})
            w.gauge(API_PRICE_PER_MILLION, route_labels, value)
    return w.freeze()

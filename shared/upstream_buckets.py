"""Histogram bucket bounds of the upstream families we read: vLLM's per generation (from vLLM's metrics code) and
LiteLLM's latency buckets (as a real proxy exports them, tests/fixtures/litellm/metrics.http).

The simulators emit them; the aggregator's SLOs accept only latency thresholds on the bounds every version has.
"""

from __future__ import annotations


def buckets_125(max_value: int) -> tuple[float, ...]:
    """vLLM's ``build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, … up to ``max_value``."""
    out: list[float] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exponent
            if v > max_value:
                return tuple(out)
            out.append(float(v))
        exponent += 1


V0_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
V0_TPOT = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
V0_E2E = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
N_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0)
V1_TTFT = (*V0_TTFT, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
V1_ITL = (*V0_TPOT, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
V1_LATENCY_HEAD = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
V1_LATENCY = (*V1_LATENCY_HEAD, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION = (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0)
PREEMPTIONS = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)
PREFILL_PER_TOKEN = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
HTTP_HIGHR_HEAD = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
HTTP_HIGHR = (*HTTP_HIGHR_HEAD, 7.5, 10.0, 30.0, 60.0)
HTTP_FEW = (0.1, 0.5, 1.0)

# litellm.types.integrations.prometheus.LATENCY_BUCKETS: every LiteLLM latency histogram (total, API, TTFT)
LITELLM_LATENCY_HEAD = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
LITELLM_LATENCY = (*LITELLM_LATENCY_HEAD, 30.0, 60.0, 120.0, 300.0, 420.0, 600.0)

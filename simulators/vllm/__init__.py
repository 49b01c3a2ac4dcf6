"""A realistic, cheap vLLM simulator: ``/metrics``, ``/health``, ``/ping``, ``/v1/models`` and ``/version``.

Four generations are reproduced from the reference notes (``shared/reference/vllm-and-epp.md`` §2–3) and the
recorded expositions in ``tests/fixtures``:

* ``0.5``  – vLLM 0.5.3.post1, V0 engine inside the API server: default registry (``python_gc_*``, ``process_*``),
  ``vllm:cache_config_info`` from ``Info``, ``time_per_output_token_seconds``, ``request_params_best_of``,
  empty spec-decode families, no ``_created``; prometheus_client 0.20 float spelling (``1.06e+011``).
* ``0.6``  – vLLM 0.6.3.post1, V0 engine behind the multiprocess frontend: a ``MultiProcessCollector`` registry, so
  no ``python_*``/``process_*`` families, no empty families, histogram samples ordered ``_sum``, buckets, ``_count``;
  ``gpu/cpu_prefix_cache_hit_rate`` are -1 (prefix caching off).
* ``0.10`` – V1 engine as in ``vllm/v1/metrics/loggers.py`` at commit 005a810 (≈0.10): both the deprecated
  ``gpu_cache_usage_perc`` / ``gpu_prefix_cache_*`` (HELP says DEPRECATED) and their renames,
  ``time_per_output_token_seconds`` with ``inter_token_latency_seconds`` beside it (as 0.10-era builds showed),
  ``time_per_prefill_token_request_seconds``, ``finished_reason`` stop/length/abort, ``engine`` label, ``_created``
  series, ``http_*`` (prometheus-fastapi-instrumentator).
* ``0.33`` – current V1 (vLLM 0.33.0): the family set of ``tests/fixtures/vllm-v1-metrics.txt``.

Traffic is simulated per data-parallel engine with a seeded RNG: Poisson arrivals with a slow diurnal wave and
occasional bursts, admission limited by ``max_num_seqs`` and KV-cache blocks, token-level decode timing that slows
with batch size, preemption when the KV cache overflows, a little abort/4xx noise.  Counters only increase;
histograms stay consistent (cumulative buckets, ``+Inf == _count``).

Rendering is cheap: each instance keeps one ``%``-template of its exposition (HELP/TYPE lines, label strings,
bucket strings and ``_created`` values baked in), rebuilt only when a new labelled child appears; a render is one
pass that collects the live values and one ``str %`` with ``prometheus_client.utils.floatToGoString`` formatting.
The HTTP layer re-renders an instance at most once per second.

While an instance is loading (``load_seconds``) every endpoint answers 503.  Real vLLM binds its port before the
model loads but only starts listening afterwards, so a real scraper sees *connection refused* during that window;
503 is the documented stand-in.
"""

from inferwatch.simulators.vllm.fleet import demo_fleet, main, make_fleet, start_demo
from inferwatch.simulators.vllm.instance import FAULTS, SimulatedVllm, VllmGeneration
from inferwatch.simulators.vllm.server import HUGE_BODY_BYTES, METRICS_CONTENT_TYPE, build_app, serve

__all__ = [
    "FAULTS",
    "HUGE_BODY_BYTES",
    "METRICS_CONTENT_TYPE",
    "SimulatedVllm",
    "VllmGeneration",
    "build_app",
    "demo_fleet",
    "main",
    "make_fleet",
    "serve",
    "start_demo",
]

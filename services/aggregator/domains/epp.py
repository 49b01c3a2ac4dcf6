"""EPP snapshots → ``inferwatch_epp_*``: one stable family set whatever the EPP's naming generation."""

from __future__ import annotations

from inferwatch.contracts.epp import EppSnapshot
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for

P = "inferwatch_epp_"
UP = Family(P + "up", "gauge", "1 when the EPP's /metrics was scraped, 0 with the reason (what to fix) otherwise.")
INFO = Family(P + "info", "gauge", "Detected EPP metric naming generation; always 1.")
REQUESTS = Family(P + "requests", "counter", "Requests per requested model and target model.")
ERRORS = Family(P + "request_errors", "counter", "Request errors per model pair and error code.")
DURATION = Family(P + "request_duration_seconds", "histogram", "Request latency per model pair.")
INPUT_TOKENS = Family(P + "request_input_tokens", "histogram", "Input tokens per request.")
OUTPUT_TOKENS = Family(P + "request_output_tokens", "histogram", "Output tokens per request.")
RUNNING = Family(P + "running_requests", "gauge", "Requests in flight per model pair.")
POOL_KV = Family(P + "pool_average_kv_cache_utilization_ratio", "gauge", "Mean KV-cache use of the pool's endpoints.")
POOL_QUEUE = Family(P + "pool_average_queue_size", "gauge", "Mean queue length of the pool's endpoints.")
POOL_READY = Family(P + "pool_ready_endpoints", "gauge", "Ready endpoints (pods) in the pool.")
ENDPOINT_QUEUE = Family(P + "endpoint_queue_size", "gauge", "Queue length per pool endpoint.")
SCHED_E2E = Family(P + "scheduler_e2e_duration_seconds", "histogram", "Scheduler end-to-end latency.")
SCHED_ATTEMPTS = Family(P + "scheduler_attempts", "counter", "Scheduling attempts by status.")
FLOW_QUEUE = Family(P + "flow_control_queue_size", "gauge", "Flow-control queue size (flowControl feature gate).")


def render_epp(event: EppSnapshot, w: SeriesWriter) -> None:
    """One EPP target."""
    t = {"target": event.source}
    w.gauge(UP, label_block({**t, "reason": event.error}), 1.0 if event.up else 0.0)
    if event.naming:
        w.gauge(INFO, label_block({**t, "naming": event.naming}), 1.0)
    for o in event.objectives:
        ident = {**t, "model_name": o.model_name, "target_model_name": o.target_model_name}
        w.counter(REQUESTS, label_block(ident), o.requests_total)
        for code, value in sorted(o.errors_total.items()):
            w.counter(ERRORS, label_block({**ident, "error_code": code}), value)
        w.gauge(RUNNING, label_block(ident), o.running_requests)
        w.histogram(DURATION, label_block(ident), o.request_duration_seconds)
        w.histogram(INPUT_TOKENS, label_block(ident), o.input_tokens)
        w.histogram(OUTPUT_TOKENS, label_block(ident), o.output_tokens)
    for p in event.pools:
        ident = {**t, "pool": p.pool}
        w.gauge(POOL_KV, label_block(ident), p.average_kv_cache_utilization_ratio)
        w.gauge(POOL_QUEUE, label_block(ident), p.average_queue_size)
        w.gauge(POOL_READY, label_block(ident), p.ready_endpoints)
        for endpoint, value in sorted(p.per_endpoint_queue_size.items()):
            w.gauge(ENDPOINT_QUEUE, label_block({**ident, "endpoint": endpoint}), value)
    w.histogram(SCHED_E2E, label_block(t), event.scheduler_e2e_seconds)
    for status, value in sorted(event.scheduler_attempts_total.items()):
        w.counter(SCHED_ATTEMPTS, label_block({**t, "status": status}), value)
    w.gauge(FLOW_QUEUE, label_block(t), event.flow_control_queue_size)


RENDERERS = renderer_for(EppSnapshot, render_epp)

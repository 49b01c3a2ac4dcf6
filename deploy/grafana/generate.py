"""Generate inferwatch's Grafana dashboards from code: ``.venv/bin/python deploy/grafana/generate.py``.

Each dashboard is declared as a list of `Panel` entries and `row` markers (below, one function per dashboard)
and rendered with Grafana's own typed builders, grafana-foundation-sdk (a generation-time dependency: the
``test`` extra), into ``deploy/grafana/dashboards/*.json`` (committed). tests/unit/test_deploy.py checks that
regenerating gives the same bytes, that every dashboard decodes into the SDK's dashboard, panel and Prometheus
query types and encodes back unchanged, and that every metric a query names exists. Every dashboard has the
``host``, ``model`` and ``container`` variables and a description on every panel (the panel's help text).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from inferwatch.services.aggregator.slo import DEFAULT_SLO_FILE, KEY_LABEL, load_slos

OUT = Path(__file__).with_name("dashboards")
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'host=~"$host"'

# The SDK's typed panel builder for each panel type the dashboards use.
PANEL_BUILDERS: dict[str, Callable[[], Any]] = {
    "timeseries": timeseries.Panel,
    "stat": stat.Panel,
    "table": table.Panel,
    "bargauge": bargauge.Panel,
    "heatmap": heatmap.Panel,
    "state-timeline": statetimeline.Panel,
}


@dataclass
class Panel:
    """One panel: its queries (PromQL), type and help text."""

    title: str
    description: str
    queries: list[str] | dict[str, str]
    type: str = "timeseries"
    unit: str = ""
    width: int = 12
    height: int = 8
    instant: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def legends(self) -> list[tuple[str, str]]:
        """``(legend, expr)`` pairs."""
        if isinstance(self.queries, dict):
            return list(self.queries.items())
        return [("", q) for q in self.queries]


def row(title: str) -> dict[str, Any]:
    """A collapsible row marker."""
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _query(panel: Panel, index: int, legend: str, expr: str) -> prometheus.Dataquery:
    query = prometheus.Dataquery().ref_id(chr(ord("A") + index)).expr(expr).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if panel.instant or panel.type in ("table", "stat", "bargauge"):
        table_format = PromQueryFormat.TABLE if panel.type == "table" else PromQueryFormat.TIME_SERIES
        query = query.instant().format(table_format)
    return query


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> Any:
    """The typed builder of one panel, placed at ``(x, y)``."""
    if panel.type not in PANEL_BUILDERS:
        raise ValueError(f"{panel.title}: panel type {panel.type!r} has no builder in PANEL_BUILDERS")
    builder = (
        PANEL_BUILDERS[panel.type]()
        .id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .grid_pos(model.GridPos(h=panel.height, w=panel.width, x=x, y=y))
    )
    if panel.unit:
        builder = builder.unit(panel.unit)
    for i, (legend, expr) in enumerate(panel.legends()):
        builder = builder.with_target(_query(panel, i, legend, expr))
    return builder


def _variable(name: str, query: str, label: str) -> builders.QueryVariable:
    return (
        builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": query, "refId": name})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .multi(True)
        .all_value(".*")
        .current(model.VariableOption(text="All", value="$__all"))
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def dashboard(
    uid: str,
    title: str,
    description: str,
    items: list[Panel | dict[str, Any]],
    variables: tuple[tuple[str, str, str], ...],
) -> dict[str, Any]:
    """A whole dashboard, built with the SDK's typed builders: panels laid out left to right, rows full width."""
    board = (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["inferwatch"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("")
        .with_variable(builders.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for name, query, label in variables:
        board = board.with_variable(_variable(name, query, label))
    options: dict[int, dict[str, Any]] = {}
    x = y = 0
    line_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, dict):
            y += line_height
            x, line_height = 0, 0
            position = model.GridPos(h=1, w=24, x=0, y=y)
            board = board.with_row(builders.Row(item["title"]).id(panel_id).grid_pos(position))
            y += 1
            continue
        if x + item.width > 24:
            y += line_height
            x, line_height = 0, 0
        board = board.with_panel(_panel(item, panel_id, x, y))
        if item.options:
            options[panel_id] = item.options
        x += item.width
        line_height = max(line_height, item.height)
    rendered: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for panel in rendered["panels"]:
        if panel["type"] != "row":
            # Options as declared (Panel.options, checked against the panel type's typed options in
            # tests/unit/test_deploy.py); the rest is left to Grafana's defaults, not the SDK's (whose defaults
            # differ: a hidden legend on time series), so the SDK's empty ``null`` becomes ``{}``.
            panel["options"] = options.get(panel["id"], {})
    return rendered


# Variables. Each dashboard filters by host, model and container where its series carry them.
VLLM_VARS = (
    ("host", "label_values(inferwatch_docker_engine_info, host)", "Host"),
    ("model", "label_values(inferwatch_vllm_requests_running, model_name)", "Model"),
    ("container", "label_values(inferwatch_vllm_info, container)", "Container"),
)
LITELLM_VARS = (
    ("host", "label_values(inferwatch_litellm_up, proxy)", "Proxy"),
    ("model", "label_values(inferwatch_litellm_model_info, model_group)", "Model"),
    ("container", "label_values(inferwatch_container_info, container)", "Container"),
)
LANGFUSE_VARS = (
    ("host", "label_values(inferwatch_langfuse_up, project)", "Project"),
    ("model", "label_values(inferwatch_langfuse_observations_total, model)", "Model"),
    ("container", "label_values(inferwatch_container_info, container)", "Container"),
)

V = 'container=~"$container",model_name=~"$model"'


def vllm_docker() -> dict[str, Any]:
    """vLLM Docker status."""
    items: list[Panel | dict[str, Any]] = [
        row("Containers"),
        Panel(
            "Containers",
            "Every vLLM container: status, vLLM version, models, GPUs, CUDA version.",
            [
                f'inferwatch_container_info{{{SEL},container=~"$container",kind="vllm"}}',
                'inferwatch_vllm_info{container=~"$container"}',
            ],
            type="table",
            width=24,
        ),
        Panel(
            "Status",
            "Model status per instance: loading, ready or error.",
            {"{{container}} {{status}}": 'inferwatch_vllm_model_status{container=~"$container"} == 1'},
            type="stat",
            width=8,
        ),
        Panel(
            "Uptime",
            "Seconds since each container started.",
            {
                "{{container}}": "time() - inferwatch_container_started_timestamp_seconds"
                f'{{{SEL},container=~"$container"}}'
            },
            type="stat",
            unit="s",
            width=8,
        ),
        Panel(
            "Restarts",
            "Docker's restart count per container.",
            {"{{container}}": f'inferwatch_container_restarts{{{SEL},container=~"$container"}}'},
            type="stat",
            width=8,
        ),
        Panel(
            "Health",
            "1 when vLLM's /health answers 200.",
            {"{{container}}": 'inferwatch_vllm_health_ok{container=~"$container"}'},
            type="stat",
            width=8,
        ),
        Panel(
            "Scrape up",
            "1 when the last scrape of the instance's /metrics succeeded.",
            {"{{target}}": 'inferwatch_vllm_up{container=~"$container"}'},
            type="stat",
            width=8,
        ),
        Panel(
            "CUDA version",
            "CUDA driver version per host, from NVML.",
            [f"inferwatch_gpu_info{{{SEL}}}"],
            type="table",
            width=8,
        ),
        row("GPU"),
        Panel(
            "GPU memory per model",
            "GPU memory used by the container serving each model.",
            {"{{host}} GPU {{gpu}}": f"inferwatch_gpu_memory_used_bytes{{{SEL}}}"},
            unit="bytes",
        ),
        Panel(
            "GPU utilisation by container",
            "SM utilisation of the GPUs each container uses.",
            {"{{host}} GPU {{gpu}}": f"inferwatch_gpu_utilization_ratio{{{SEL}}}"},
            unit="percentunit",
        ),
        Panel(
            "GPU-to-model matrix",
            "Which GPUs each vLLM container holds (from the container's device requests).",
            [f'inferwatch_container_info{{{SEL},kind="vllm",container=~"$container"}}'],
            type="table",
        ),
        Panel(
            "GPU memory trend",
            "Memory used vs total per GPU over time.",
            {
                "used {{gpu}}": f"inferwatch_gpu_memory_used_bytes{{{SEL}}}",
                "total {{gpu}}": f"inferwatch_gpu_memory_total_bytes{{{SEL}}}",
            },
            unit="bytes",
        ),
        row("Engine"),
        Panel(
            "Running requests",
            "Requests running on the engine (sequences in the batch; the batch size in tokens is below).",
            {"{{container}} {{model_name}}": f"inferwatch_vllm_requests_running{{{V}}}"},
        ),
        Panel(
            "Waiting requests",
            "Requests queued in the engine.",
            {"{{container}} {{model_name}}": f"inferwatch_vllm_requests_waiting{{{V}}}"},
        ),
        Panel(
            "Throughput (tokens/s)",
            "Generated and prompt tokens per second.",
            {
                "gen {{model_name}}": f"sum by (model_name) (rate(inferwatch_vllm_generation_tokens_total{{{V}}}[5m]))",
                "prompt {{model_name}}": f"sum by (model_name) (rate(inferwatch_vllm_prompt_tokens_total{{{V}}}[5m]))",
            },
        ),
        Panel(
            "KV cache usage",
            "Fraction of KV-cache blocks in use; near 1 the scheduler preempts.",
            {"{{container}} {{model_name}}": f"inferwatch_vllm_kv_cache_usage_ratio{{{V}}}"},
            unit="percentunit",
        ),
        Panel(
            "Active sequences",
            "Running plus waiting requests per model.",
            {
                "{{model_name}}": f"sum by (model_name) (inferwatch_vllm_requests_running{{{V}}} + "
                f"inferwatch_vllm_requests_waiting{{{V}}})"
            },
        ),
        Panel(
            "TTFT p95",
            "95th percentile time to first token over 5 minutes.",
            {
                "{{model_name}}": "histogram_quantile(0.95, sum by (model_name, le) "
                f"(rate(inferwatch_vllm_time_to_first_token_seconds_bucket{{{V}}}[5m])))"
            },
            unit="s",
        ),
        Panel(
            "Preemptions",
            "Requests preempted per second.",
            {"{{model_name}}": f"sum by (model_name) (rate(inferwatch_vllm_preemptions_total{{{V}}}[5m]))"},
        ),
        *_vllm_tuning_rows(),
        row("Model loading"),
        Panel(
            "Model loading timeline",
            "Status of each instance over time (loading → ready).",
            {"{{container}} {{status}}": 'inferwatch_vllm_model_status{container=~"$container"} == 1'},
            type="state-timeline",
            width=16,
        ),
        Panel(
            "Load duration",
            "Seconds from first seen loading to ready.",
            {"{{container}}": 'inferwatch_vllm_model_load_duration_seconds{container=~"$container"}'},
            type="bargauge",
            unit="s",
            width=8,
        ),
    ]
    return dashboard(
        "inferwatch-vllm-docker",
        "vLLM Docker status",
        "vLLM containers on Docker hosts: status, GPUs, engine load, model loading.",
        items,
        VLLM_VARS,
    )


def _quantiles(family: str, by: str = "model_name") -> dict[str, str]:
    """p50 and p95 of an ``inferwatch_vllm_*`` histogram over 5 minutes, per ``by``."""
    return {
        f"p{q} {{{{{by}}}}}": f"histogram_quantile(0.{q}, sum by ({by}, le) (rate({family}_bucket{{{V}}}[5m])))"
        for q in ("50", "95")
    }


HTTP = "inferwatch_vllm_http_requests_total"
C = 'container=~"$container"'


def _vllm_tuning_rows() -> list[Panel | dict[str, Any]]:
    """Batch size, why requests wait, the prompt cache, speculative decoding, LoRA, utilisation, HTTP errors."""
    return [
        row("Batch size"),
        Panel(
            "Batch size (tokens per engine step)",
            "p50 and p95 of the tokens each engine step processes, prefill and decode together "
            "(vllm:iteration_tokens_total).",
            _quantiles("inferwatch_vllm_iteration_tokens"),
        ),
        Panel(
            "Waiting requests by reason",
            "capacity: no room to schedule; deferred: held back by the LoRA budget or a KV transfer.",
            {
                "{{model_name}} {{reason}}": "sum by (model_name, reason) "
                f"(inferwatch_vllm_requests_waiting_by_reason{{{V}}})"
            },
        ),
        Panel(
            "Admission rejections",
            "Requests refused per second by a queue limit (max_num_queued_reqs, max_num_queued_tokens).",
            {
                "{{model_name}} {{reason}}": "sum by (model_name, reason) "
                f"(rate(inferwatch_vllm_admission_rejections_total{{{V}}}[5m]))"
            },
        ),
        Panel(
            "Sleep state",
            "The engine's sleep state (awake, weights_offloaded, discard_all).",
            {"{{container}} {{engine}} {{sleep_state}}": f"inferwatch_vllm_engine_sleep_state{{{V}}} == 1"},
            type="state-timeline",
        ),
        Panel(
            "Inference time p50/p95",
            "Time requests spend running (prefill + decode), per request.",
            _quantiles("inferwatch_vllm_request_inference_time_seconds"),
            unit="s",
        ),
        Panel(
            "Preemptions per request p95",
            "95th percentile of the times a request was preempted.",
            {
                "{{model_name}}": "histogram_quantile(0.95, sum by (model_name, le) "
                f"(rate(inferwatch_vllm_request_preemptions_bucket{{{V}}}[5m])))"
            },
        ),
        row("Prompt cache"),
        Panel(
            "Prompt tokens by source",
            "Share of prompt tokens computed locally, hit in the local prefix cache or transferred from another "
            "instance's KV cache, over 5 minutes.",
            {
                "{{model_name}} {{source}}": "sum by (model_name, source) "
                f"(rate(inferwatch_vllm_prompt_tokens_by_source_total{{{V}}}[5m])) / ignoring (source) group_left "
                f"sum by (model_name) (rate(inferwatch_vllm_prompt_tokens_by_source_total{{{V}}}[5m]))"
            },
            unit="percentunit",
        ),
        Panel(
            "KV-cache capacity",
            "KV-cache capacity in tokens per engine (num_gpu_blocks x block_size) and the share in use.",
            {
                "capacity {{container}} {{engine}}": f"inferwatch_vllm_kv_cache_capacity_tokens{{{V}}}",
                "in use {{container}} {{engine}}": f"inferwatch_vllm_kv_cache_capacity_tokens{{{V}}} "
                f"* on (target, model_name, engine) inferwatch_vllm_kv_cache_usage_ratio{{{V}}}",
            },
        ),
        row("Speculative decoding"),
        Panel(
            "Acceptance rate",
            "Accepted over proposed draft tokens over 5 minutes.",
            {
                "{{model_name}}": "sum by (model_name) "
                f"(rate(inferwatch_vllm_spec_decode_accepted_tokens_total{{{V}}}[5m])) / sum by (model_name) "
                f"(rate(inferwatch_vllm_spec_decode_draft_tokens_total{{{V}}}[5m]))"
            },
            unit="percentunit",
        ),
        Panel(
            "Mean acceptance length",
            "Tokens each draft yields over 5 minutes, the bonus token included (1 + accepted / drafts; V1).",
            {
                "{{model_name}}": "1 + sum by (model_name) "
                f"(rate(inferwatch_vllm_spec_decode_accepted_tokens_total{{{V}}}[5m])) / sum by (model_name) "
                f"(rate(inferwatch_vllm_spec_decode_drafts_total{{{V}}}[5m]))"
            },
        ),
        Panel(
            "Accepted tokens by draft position",
            "Accepted tokens per second at each draft position (V1): a steep fall says fewer speculative tokens.",
            {
                "{{model_name}} pos {{position}}": "sum by (model_name, position) "
                f"(rate(inferwatch_vllm_spec_decode_accepted_tokens_per_position_total{{{V}}}[5m]))"
            },
        ),
        row("LoRA"),
        Panel(
            "LoRA adapters running",
            "Adapters with running requests per instance, and the most the engine holds at once (--max-loras).",
            {
                "running {{container}}": 'inferwatch_vllm_lora_running_adapters{container=~"$container"}',
                "waiting {{container}}": 'inferwatch_vllm_lora_waiting_adapters{container=~"$container"}',
                "max {{container}}": 'inferwatch_vllm_lora_max_adapters{container=~"$container"}',
            },
        ),
        Panel(
            "Adapters with running requests",
            "1 while an adapter has running requests (at most 32 adapters per instance are listed).",
            {"{{container}} {{adapter}}": 'inferwatch_vllm_lora_adapter_running{container=~"$container"} == 1'},
            type="state-timeline",
        ),
        row("Utilisation (MFU)"),
        Panel(
            "MFU",
            "Achieved FLOP/s per GPU over the dense 16-bit peak of the GPUs the container uses "
            "(needs --enable-mfu-metrics and the gpu-agent; recording rules in deploy/prometheus/rules).",
            {
                "{{container}} {{model_name}}": "target:inferwatch_vllm_model_flops_utilization:ratio_5m"
                '{container=~"$container"}'
            },
            unit="percentunit",
        ),
        Panel(
            "MBU",
            "Achieved memory bytes/s per GPU (read + write) over the GPUs' peak bandwidth.",
            {
                "{{container}} {{model_name}}": "target:inferwatch_vllm_model_bandwidth_utilization:ratio_5m"
                '{container=~"$container"}'
            },
            unit="percentunit",
        ),
        Panel(
            "Achieved FLOP/s and bytes/s per GPU",
            "vLLM's own estimates per GPU (estimated_*_per_gpu_total), mean over the instance's engines.",
            {
                "FLOP/s {{container}}": 'target:inferwatch_vllm_achieved_flops_per_gpu:rate5m{container=~"$container"}',
                "bytes/s {{container}}": "target:inferwatch_vllm_achieved_bytes_per_gpu:rate5m"
                '{container=~"$container"}',
            },
        ),
        row("API server"),
        Panel(
            "HTTP error ratio by handler",
            "Share of the API server's answers that were 4xx or 5xx, by handler, over 5 minutes "
            '(inferwatch_vllm_http_requests_total{status=~"4xx|5xx"}; V1).',
            {
                "{{handler}}": f'(sum by (handler) (rate({HTTP}{{{C},status=~"4xx|5xx"}}[5m])) '
                f"or 0 * sum by (handler) (rate({HTTP}{{{C}}}[5m]))) / sum by (handler) (rate({HTTP}{{{C}}}[5m]))"
            },
            unit="percentunit",
        ),
        Panel(
            "Aborted and errored requests",
            "Requests the engine finished as abort or error, per second.",
            {
                "{{model_name}} {{finished_reason}}": "sum by (model_name, finished_reason) "
                f'(rate(inferwatch_vllm_request_success_total{{{V},finished_reason=~"abort|error"}}[5m]))'
            },
        ),
    ]


L = 'proxy=~"$host",model_group=~"$model"'


def litellm_status() -> dict[str, Any]:
    """LiteLLM status."""
    items: list[Panel | dict[str, Any]] = [
        row("Availability"),
        Panel(
            "Model availability",
            "Every deployment: type, endpoint, status and health.",
            [f"inferwatch_litellm_model_info{{{L}}}", f"inferwatch_litellm_deployment_status{{{L}}} == 1"],
            type="table",
            width=24,
        ),
        Panel(
            "Proxy up",
            "1 when /health/liveliness answers.",
            {"{{proxy}}": 'inferwatch_litellm_up{proxy=~"$host"}'},
            type="stat",
            width=8,
        ),
        Panel(
            "Queue depth",
            "Requests in flight on the proxy.",
            {"{{proxy}}": 'inferwatch_litellm_in_flight_requests{proxy=~"$host"}'},
            width=16,
        ),
        row("Traffic"),
        Panel(
            "Requests per minute",
            "All requests; change the time range for per-hour or per-day views.",
            {"req/min": f"sum(rate(inferwatch_litellm_requests_total{{{L}}}[$__rate_interval])) * 60"},
        ),
        Panel(
            "Requests by model",
            "Requests per minute per model group.",
            {
                "{{model_group}}": "sum by (model_group) "
                f"(rate(inferwatch_litellm_requests_total{{{L}}}[$__rate_interval])) * 60"
            },
        ),
        Panel(
            "Requests per hour / day",
            "Request count over the last hour and day.",
            {
                "last 1h": f"sum(increase(inferwatch_litellm_requests_total{{{L}}}[1h]))",
                "last 24h": f"sum(increase(inferwatch_litellm_requests_total{{{L}}}[1d]))",
            },
            type="stat",
        ),
        Panel(
            "Success vs errors",
            "Requests by status class.",
            {"{{status}}": f"sum by (status) (rate(inferwatch_litellm_requests_total{{{L}}}[$__rate_interval]))"},
        ),
        row("Tokens and cost"),
        Panel(
            "Input / output tokens",
            "Tokens per second in and out.",
            {
                "input": f"sum(rate(inferwatch_litellm_input_tokens_total{{{L}}}[$__rate_interval]))",
                "output": f"sum(rate(inferwatch_litellm_output_tokens_total{{{L}}}[$__rate_interval]))",
            },
        ),
        Panel(
            "Token usage by model",
            "Tokens over the range per model group.",
            {
                "{{model_group}}": "sum by (model_group) "
                f"(increase(inferwatch_litellm_output_tokens_total{{{L}}}[$__range]))"
            },
            type="bargauge",
        ),
        Panel(
            "Cost",
            "USD spent over the selected range per model group.",
            {
                "{{model_group}}": "sum by (model_group) "
                f"(increase(inferwatch_litellm_spend_usd_total{{{L}}}[$__range]))"
            },
            type="bargauge",
            unit="currencyUSD",
        ),
        row("Latency"),
        Panel(
            "Latency P50 / P90 / P99",
            "Proxy end-to-end latency quantiles.",
            {
                f"p{int(q * 100)}": f"histogram_quantile({q}, sum by (le) (rate("
                f"inferwatch_litellm_request_latency_seconds_bucket{{{L}}}[5m])))"
                for q in (0.5, 0.9, 0.99)
            },
            unit="s",
        ),
        Panel(
            "Latency heatmap",
            "Distribution of request latency over time.",
            [f"sum by (le) (increase(inferwatch_litellm_request_latency_seconds_bucket{{{L}}}[$__rate_interval]))"],
            type="heatmap",
        ),
        Panel(
            "Slow requests",
            "Requests slower than 10 s per minute.",
            {
                "{{model_group}}": "sum by (model_group) (rate(inferwatch_litellm_request_latency_seconds_count"
                f"{{{L}}}[5m]) - rate(inferwatch_litellm_request_latency_seconds_bucket"
                f'{{{L},le="10"}}[5m])) * 60'
            },
        ),
        Panel(
            "Model metadata",
            "Provider, context window and prices per deployment.",
            [f"inferwatch_litellm_model_info{{{L}}}"],
            type="table",
        ),
    ]
    return dashboard(
        "inferwatch-litellm",
        "LiteLLM status",
        "LiteLLM proxies: model availability, traffic, tokens, cost, latency.",
        items,
        LITELLM_VARS,
    )


def model_catalog() -> dict[str, Any]:
    """Model catalog."""
    items: list[Panel | dict[str, Any]] = [
        Panel(
            "Models",
            "Searchable: name, ID, type, provider, endpoint, size, quantization, HF link, availability. "
            "Use the column filter to search.",
            ['inferwatch_model_info{model=~"$model"}'],
            type="table",
            width=24,
            height=12,
            options={"showHeader": True, "footer": {"show": False}, "cellHeight": "sm"},
        ),
        Panel(
            "Capabilities",
            "Model types and capabilities (chat, embedding, tools, vision).",
            {"{{type}}": 'count by (type) (inferwatch_model_info{model=~"$model"})'},
            type="bargauge",
        ),
        Panel(
            "Endpoints (copy to use)",
            "OpenAI-compatible base URL per model: curl $endpoint/v1/chat/completions.",
            ['inferwatch_model_info{model=~"$model"}'],
            type="table",
        ),
        Panel(
            "Versions",
            "vLLM version serving each model.",
            ['inferwatch_vllm_info{container=~"$container"}'],
            type="table",
        ),
        Panel(
            "Deprecation notes",
            "Models flagged deprecated upstream.",
            ['inferwatch_model_info{model=~"$model",deprecated="true"}'],
            type="table",
        ),
    ]
    return dashboard(
        "inferwatch-model-catalog",
        "Model catalog",
        "Every model inferwatch has seen, with metadata from Hugging Face.",
        items,
        VLLM_VARS,
    )


F = 'project=~"$host",model=~"$model"'


def langfuse_analytics() -> dict[str, Any]:
    """Langfuse analytics."""
    items: list[Panel | dict[str, Any]] = [
        Panel(
            "Traces over time",
            "Traces per minute.",
            {
                "{{project}}": 'sum by (project) (rate(inferwatch_langfuse_traces_total{project=~"$host"}'
                "[$__rate_interval])) * 60"
            },
        ),
        Panel(
            "Unique users",
            "Distinct users in Langfuse's window.",
            {"{{project}}": 'inferwatch_langfuse_window_unique_users{project=~"$host"}'},
            type="stat",
        ),
        Panel(
            "Request patterns / peak hours",
            "Traces by weekday and hour (UTC).",
            ['sum by (weekday, hour) (inferwatch_langfuse_activity_traces_total{project=~"$host"})'],
            type="heatmap",
        ),
        Panel(
            "Tokens by model",
            "Tokens per second by model and direction.",
            {
                "{{model}} {{direction}}": f"sum by (model, direction) (rate(inferwatch_langfuse_tokens_total{{{F}}}"
                "[$__rate_interval]))"
            },
        ),
        Panel(
            "Cost by model",
            "USD over the range per model.",
            {"{{model}}": f"sum by (model) (increase(inferwatch_langfuse_cost_usd_total{{{F}}}[$__range]))"},
            type="bargauge",
            unit="currencyUSD",
        ),
        Panel(
            "Budget forecast (30 d)",
            "Spend over the next 30 days at the last day's rate.",
            {"forecast": f"sum(rate(inferwatch_langfuse_cost_usd_total{{{F}}}[1d])) * 86400 * 30"},
            type="stat",
            unit="currencyUSD",
        ),
        Panel(
            "Error rate",
            "Share of ERROR-level observations per model.",
            {
                "{{model}}": f"sum by (model) (rate(inferwatch_langfuse_error_observations_total{{{F}}}[15m])) / "
                f"sum by (model) (rate(inferwatch_langfuse_observations_total{{{F}}}[15m]))"
            },
            unit="percentunit",
        ),
        Panel(
            "Scores", "Mean of each numeric score.", {"{{name}}": 'inferwatch_langfuse_score_mean{project=~"$host"}'}
        ),
        Panel(
            "Model comparison",
            "Latency p50/p99 per model.",
            [f"inferwatch_langfuse_latency_seconds{{{F}}}"],
            type="table",
        ),
        Panel(
            "User activity heatmap",
            "Traces per user over time.",
            {
                "{{user}}": 'sum by (user) (increase(inferwatch_langfuse_traces_total{project=~"$host"}'
                "[$__rate_interval]))"
            },
            type="heatmap",
        ),
        Panel(
            "Trace links",
            "Langfuse projects and their server versions (open traces in Langfuse).",
            ['inferwatch_langfuse_info{project=~"$host"}'],
            type="table",
        ),
        row("Spans, levels and sessions"),
        Panel(
            "Observations by type",
            "Spans, generations, events, tool calls, agent steps… per minute.",
            {
                "{{type}}": 'sum by (type) (rate(inferwatch_langfuse_observations_by_type_total{project=~"$host"}'
                "[$__rate_interval])) * 60"
            },
        ),
        Panel(
            "Observations by level",
            "Per minute by level: WARNING is not an error, but worth watching before it becomes one.",
            {
                "{{level}}": 'sum by (level) (rate(inferwatch_langfuse_observations_by_level_total{project=~"$host"}'
                "[$__rate_interval])) * 60"
            },
        ),
        Panel(
            "Traces by name",
            "Traces per minute by trace name (names beyond the cap: other).",
            {
                "{{trace_name}}": "topk(15, sum by (trace_name) (rate(inferwatch_langfuse_traces_by_name_total"
                '{project=~"$host"}[$__rate_interval]))) * 60'
            },
        ),
        Panel(
            "Sessions",
            "Distinct sessions in the re-check window, and the share of traces that belong to a session.",
            {
                "sessions {{project}}": 'inferwatch_langfuse_window_unique_sessions{project=~"$host"}',
                "in a session {{project}}": "sum by (project) (rate(inferwatch_langfuse_session_traces_total"
                '{project=~"$host"}[1h])) / sum by (project) (rate(inferwatch_langfuse_traces_total'
                '{project=~"$host"}[1h]))',
            },
        ),
        Panel(
            "Session length",
            "Traces per session and session duration over the re-check window (quantiles).",
            {
                "traces p{{quantile}}": 'inferwatch_langfuse_window_session_traces{project=~"$host"}',
                "seconds p{{quantile}}": 'inferwatch_langfuse_window_session_duration_seconds{project=~"$host"}',
            },
        ),
    ]
    return dashboard(
        "inferwatch-langfuse",
        "Langfuse analytics",
        "Usage, cost, latency, errors and quality scores from Langfuse.",
        items,
        LANGFUSE_VARS,
    )


SHIPPED_SLOS = load_slos(DEFAULT_SLO_FILE)  # the panels name the shipped windows and factors


def slo_queries(family: str, matchers: str = "", wrap: str = "{}") -> dict[str, str]:
    """One query per kind of SLO series, legend ``slo model window``: an SLO series is per model (vLLM:
    model_name) or per route (LiteLLM: model_group), and the Model variable picks either."""
    head = f"{matchers}," if matchers else ""
    return {
        "{{slo}} {{" + key + "}} {{window}}": wrap.format(f'{family}{{{head}{key}!="",{key}=~"$model"}}')
        for key in KEY_LABEL.values()
    }


def burn_rate_panels() -> list[Panel]:
    """One burn-rate panel per alert pair of the shipped SLO file, its two windows side by side."""
    return [
        Panel(
            f"Burn rate, {pair.long} and {pair.short}",
            "How fast each SLO burns its budget (1: exactly the budget over the budget window). The "
            f"{pair.action} fires while both the {pair.long} and the {pair.short} burn rates are above "
            f"{pair.factor:g}.",
            slo_queries("inferwatch_slo_burn_rate", f'window=~"{pair.long}|{pair.short}"'),
        )
        for pair in SHIPPED_SLOS.alerts
    ]


def performance_comparison() -> dict[str, Any]:
    """Performance comparison."""
    ttft = (
        "histogram_quantile(0.95, sum by (model_name, le) (rate(inferwatch_vllm_time_to_first_token_seconds_bucket"
        f"{{{V}}}[5m])))"
    )
    tput = f"sum by (model_name) (rate(inferwatch_vllm_generation_tokens_total{{{V}}}[5m]))"
    items: list[Panel | dict[str, Any]] = [
        Panel("Latency side by side", "TTFT p95 per model.", {"{{model_name}}": ttft}, unit="s"),
        Panel("Throughput side by side", "Generated tokens per second per model.", {"{{model_name}}": tput}),
        Panel(
            "Cost per request",
            "USD per request per model group (LiteLLM).",
            {
                "{{model_group}}": "sum by (model_group) "
                '(rate(inferwatch_litellm_spend_usd_total{model_group=~"$model"}[1h])) '
                "/ sum by (model_group) (rate(inferwatch_litellm_requests_total"
                '{model_group=~"$model"}[1h]))'
            },
            unit="currencyUSD",
        ),
        Panel(
            "Quality score",
            "Mean numeric score per score name (Langfuse).",
            {"{{name}}": "inferwatch_langfuse_score_mean"},
        ),
        Panel(
            "Resource efficiency",
            "Generated tokens per second divided by KV-cache usage (higher: more work per cache).",
            {"{{model_name}}": f"{tput} / sum by (model_name) (inferwatch_vllm_kv_cache_usage_ratio{{{V}}})"},
        ),
        Panel(
            "A/B: two chosen models",
            "Select two models in the Model variable to compare them.",
            {"TTFT {{model_name}}": ttft, "tokens/s {{model_name}}": tput},
            type="table",
        ),
        Panel(
            "Recommendation ranking",
            "Lower is better: TTFT p95 (s) divided by throughput share.",
            {"{{model_name}}": f"sort({ttft} / ({tput} / ignoring(model_name) group_left sum({tput})))"},
            type="bargauge",
        ),
        Panel(
            "Anomalies",
            "Models whose TTFT p95 is more than twice its 1-day average.",
            {
                "{{model_name}}": f"{ttft} > 2 * avg_over_time(model_name:inferwatch_vllm_time_to_first_token_seconds"
                ":p95_5m[1d])"
            },
        ),
        Panel(
            "History",
            "TTFT p95 per model over the selected range (recording rule).",
            {"{{model_name}}": "model_name:inferwatch_vllm_time_to_first_token_seconds:p95_5m"},
            unit="s",
        ),
        row("Unit economics"),
        Panel(
            "Self-hosted cost vs API price per million tokens",
            "USD per million tokens on our GPUs over the aggregator's economics window (GPU-hour price + energy; "
            "input/output split by prefill/decode time), beside the compared LiteLLM route's price. "
            "Absent without a configured GPU-hour or kWh price.",
            {
                "self-hosted {{model_name}} {{direction}}": "inferwatch_model_self_hosted_cost_usd_per_million_tokens"
                f"{{{E}}}",
                "API {{route}} for {{model_name}} {{direction}}": "inferwatch_model_api_price_usd_per_million_tokens"
                f"{{{E}}}",
            },
            unit="currencyUSD",
        ),
        Panel(
            "Energy per million tokens",
            "GPU energy (input + output tokens) per model over the economics window.",
            {"{{model_name}}": f"inferwatch_model_energy_joules_per_million_tokens{{{E}}}"},
            unit="joule",
        ),
        Panel(
            "Tokens per GPU-second",
            "Tokens per attributed GPU-second by direction: the throughput the GPUs are paid for, idle time included.",
            {"{{model_name}} {{direction}}": f"inferwatch_model_tokens_per_gpu_second{{{E}}}"},
        ),
        Panel(
            "GPUs and power attributed",
            "Mean GPUs (shared GPUs by their memory share) and their power draw per model over the economics window.",
            {
                "GPUs {{model_name}}": f"inferwatch_model_attributed_gpus{{{E}}}",
                "W {{model_name}}": f"inferwatch_model_attributed_power_watts{{{E}}}",
            },
        ),
        Panel(
            "Cost table",
            "Per model now: self-hosted USD per million tokens by direction and the API price beside it.",
            {
                "self-hosted": f"inferwatch_model_self_hosted_cost_usd_per_million_tokens{{{E}}}",
                "API": f"inferwatch_model_api_price_usd_per_million_tokens{{{E}}}",
            },
            type="table",
            unit="currencyUSD",
        ),
        row("Objectives (SLOs)"),
        Panel(
            "Error budget left",
            f"Share of each SLO's error budget left over its budget window ({SHIPPED_SLOS.budget_window} shipped), "
            "per model or LiteLLM route; below 0: overspent. Objectives: services/aggregator/rules/slos.yaml.",
            slo_queries("inferwatch_slo_error_budget_remaining_ratio", wrap="sort({})"),
            type="bargauge",
            unit="percentunit",
        ),
        *burn_rate_panels(),
        Panel(
            "SLO alerts firing",
            "SloErrorBudgetBurn alerts firing in Prometheus, by SLO and window pair "
            "(deploy/README.md#sloerrorbudgetburn).",
            slo_queries("ALERTS", 'alertname="SloErrorBudgetBurn",alertstate="firing"'),
            type="table",
        ),
    ]
    return dashboard(
        "inferwatch-performance",
        "Performance comparison",
        "Latency, throughput, cost and quality side by side.",
        items,
        VLLM_VARS,
    )


E = 'model_name=~"$model"'


def epp() -> dict[str, Any]:
    """EPP."""
    items: list[Panel | dict[str, Any]] = [
        Panel(
            "Request rate",
            "Requests per second per model through the endpoint picker.",
            {"{{model_name}}": f"sum by (model_name) (rate(inferwatch_epp_requests_total{{{E}}}[$__rate_interval]))"},
        ),
        Panel(
            "Latency p95",
            "Request latency p95 per model.",
            {
                "{{model_name}}": "histogram_quantile(0.95, sum by (model_name, le) "
                f"(rate(inferwatch_epp_request_duration_seconds_bucket{{{E}}}[5m])))"
            },
            unit="s",
        ),
        Panel(
            "Pool KV cache",
            "Average KV-cache utilisation over the pool's ready pods.",
            {"{{pool}}": "inferwatch_epp_pool_average_kv_cache_utilization_ratio"},
            unit="percentunit",
        ),
        Panel(
            "Pool queue",
            "Average queue size over the pool's pods.",
            {"{{pool}}": "inferwatch_epp_pool_average_queue_size"},
        ),
        Panel(
            "Ready pods", "Ready endpoints per pool.", {"{{pool}}": "inferwatch_epp_pool_ready_endpoints"}, type="stat"
        ),
        Panel("EPP up", "1 when the EPP's /metrics answered.", {"{{target}}": "inferwatch_epp_up"}, type="stat"),
        row("Cache intelligence"),
        Panel(
            "Prefix hit ratio (mean, 5m)",
            "Mean share of each request's prefix the prefix-cache scorer found in its indexer (EppCacheHitRateLow "
            "fires below 0.3 over 15 minutes).",
            {
                "{{plugin_name}}": "sum by (target, plugin_name) "
                "(rate(inferwatch_epp_prefix_indexer_hit_ratio_sum[5m])) / sum by (target, plugin_name) "
                "(rate(inferwatch_epp_prefix_indexer_hit_ratio_count[5m]))"
            },
            unit="percentunit",
        ),
        Panel(
            "Prefix hit ratio p50 / p10",
            "Distribution of the per-request prefix hit ratio: a low p10 is traffic the cache never helps.",
            {
                f"p{int(q * 100)} {{{{plugin_name}}}}": f"histogram_quantile({q}, sum by (plugin_name, le) "
                "(rate(inferwatch_epp_prefix_indexer_hit_ratio_bucket[5m])))"
                for q in (0.5, 0.1)
            },
            unit="percentunit",
        ),
        Panel(
            "Prefix bytes hit",
            "Prefix bytes found in the indexer per second.",
            {
                "{{plugin_name}}": "sum by (plugin_name) "
                "(rate(inferwatch_epp_prefix_indexer_hit_bytes_sum[$__rate_interval]))"
            },
            unit="Bps",
        ),
        Panel(
            "Prefix indexer size",
            "Entries held by the prefix indexer (flat at its capacity: it evicts).",
            {"{{plugin_name}}": "inferwatch_epp_prefix_indexer_size"},
        ),
        Panel(
            "Cached prompt tokens",
            "Share of prompt tokens the model servers served from their prefix cache, per model.",
            {
                "{{model_name}}": "sum by (model_name) "
                f"(rate(inferwatch_epp_request_cached_tokens_sum{{{E}}}[5m])) / sum by (model_name) "
                f"(rate(inferwatch_epp_request_input_tokens_sum{{{E}}}[5m]))"
            },
            unit="percentunit",
        ),
        Panel(
            "Load imbalance",
            "Standard deviation across the pool's endpoints: high while the averages look fine means one pod "
            "takes the load.",
            {
                "kv {{pool}}": "inferwatch_epp_pool_std_dev_kv_cache_utilization_ratio",
                "queue {{pool}}": "inferwatch_epp_pool_std_dev_queue_size",
                "running {{pool}}": "inferwatch_epp_pool_std_dev_running_requests",
            },
        ),
        row("Token latency"),
        Panel(
            "TTFT p95 by streaming",
            "Time to first token p95 per model, streamed and not (EppTtftHigh fires on streamed above 2 s).",
            {
                "{{model_name}} streaming={{streaming}}": "histogram_quantile(0.95, sum by (model_name, streaming, "
                f"le) (rate(inferwatch_epp_request_ttft_seconds_bucket{{{E}}}[5m])))"
            },
            unit="s",
        ),
        Panel(
            "Per-token latency p95",
            "Normalized time per output token, and the streamed inter-token latency and time per output token.",
            {
                f"{name} {{{{model_name}}}}": f"histogram_quantile(0.95, sum by (model_name, le) "
                f"(rate(inferwatch_epp_{family}_bucket{{{E}}}[5m])))"
                for name, family in (
                    ("NTPOT", "request_ntpot_seconds"),
                    ("ITL", "request_streaming_itl_seconds"),
                    ("TPOT", "request_streaming_tpot_seconds"),
                )
            },
            unit="s",
        ),
        Panel(
            "EPP processing p99",
            "Time the EPP itself adds on the request and response paths.",
            {
                f"{path} {{{{target}}}}": f"histogram_quantile(0.99, sum by (target, le) "
                f"(rate(inferwatch_epp_{path}_processing_duration_seconds_bucket[5m])))"
                for path in ("request", "response")
            },
            unit="s",
        ),
        Panel(
            "Plugin latency p99",
            "Scheduling plugin latency per extension point and plugin.",
            {
                "{{extension_point}} {{plugin_name}}": "histogram_quantile(0.99, sum by (extension_point, "
                "plugin_name, le) (rate(inferwatch_epp_plugin_duration_seconds_bucket[5m])))"
            },
            unit="s",
        ),
    ]
    return dashboard(
        "inferwatch-epp",
        "EPP",
        "llm-d endpoint picker: traffic, latency, pools, cache-aware routing.",
        items,
        VLLM_VARS,
    )


DASHBOARDS = {
    "litellm-status": litellm_status,
    "vllm-docker-status": vllm_docker,
    "model-catalog": model_catalog,
    "langfuse-analytics": langfuse_analytics,
    "performance-comparison": performance_comparison,
    "epp": epp,
}


def render_all() -> dict[str, str]:
    """``{file name: JSON text}`` for every dashboard."""
    return {f"{name}.json": json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(out: Path = OUT) -> None:
    """Write every dashboard."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)

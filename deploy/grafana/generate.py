"""Generate inferwatch's Grafana dashboards from code: ``python deploy/grafana/generate.py``.

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
            "Batch size (running requests)",
            "Requests running on the engine: the effective batch size.",
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
    ]
    return dashboard(
        "inferwatch-langfuse",
        "Langfuse analytics",
        "Usage, cost, latency, errors and quality scores from Langfuse.",
        items,
        LANGFUSE_VARS,
    )


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
    ]
    return dashboard("inferwatch-epp", "EPP", "llm-d endpoint picker: traffic, latency, pools.", items, VLLM_VARS)


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

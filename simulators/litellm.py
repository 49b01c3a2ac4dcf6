"""A LiteLLM proxy simulator reproducing the shapes captured from a real LiteLLM 1.106.2 proxy.

Shapes follow ``shared/reference/litellm/captures`` (copied into ``tests/fixtures/litellm``): ``/health/liveliness``
(``"I'm alive!"``), ``/health/readiness`` (``status``+``db`` only), ``/health/readiness/details``, ``/health``,
``/health/backlog``, ``/model/info`` (≡ ``/v1/model/info``), ``/model_group/info``, ``/v1/models`` (≡ ``/models``),
``/metrics`` (auth first, then 307 to ``/metrics/``) and ``/metrics/`` in the 1.106.2 exposition (full label sets,
internal health-check series, the latched group-named ``litellm_deployment_state`` series).

Auth as the real proxy without a database: no key → 401 ``auth_error``; a wrong key → 400 ``no_db_connection``;
``/metrics/`` answers 401 with a JSON string.  ``Authorization: Bearer`` and ``x-litellm-api-key`` both work.

Knobs: ``version`` (``1.106.2``; ``1.70.0`` exposes the old family names: ``litellm_requests_metric``,
``litellm_total_tokens``, ``litellm_remaining_requests``), ``metrics`` (``prometheus`` / ``absent`` (404) /
``licence_gated``), ``scenario`` (``healthy`` / ``failing`` (a deployment fails, requests fall back) /
``upstream_429`` (an upstream rate-limits) ), ``fault`` (``None`` / ``429`` (every keyed route answers 429 with
``Retry-After``) / ``500`` / ``restarting`` (503, then counters start from zero) / ``bad_model_info`` (unknown
fields, a row without ``model_info``)).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from inferwatch.shared.upstream_buckets import LITELLM_LATENCY

if TYPE_CHECKING:
    from inferwatch.simulators.demo import Demo
    from inferwatch.simulators.scenarios import Scenario

__all__ = ["Deployment", "SimulatedLitellm", "default_deployments", "serve", "start_demo"]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = LITELLM_LATENCY  # what a real proxy's latency histograms use
HEALTH_KEY = "litellm-internal-health-check"
MASTER_HASH = "litellm_proxy_master_key"
_METRICS_OPT_OUT = (
    " To allow unauthenticated access, set `litellm_settings.require_auth_for_metrics_endpoint: false`"
    " in your proxy_config.yaml."
)


@dataclass
class Deployment:
    """One deployment of a model group."""

    group: str
    model_id: str
    model: str  # litellm_params.model, with provider prefix
    mode: str
    api_base: str
    input_cost: float = 1e-06
    output_cost: float = 2e-06
    fallback: str = ""
    # simulated state
    failing: bool = False
    rate_limited: bool = False
    price_multiplier: float = 1.0  # a mispriced or runaway deployment: every token costs this many times more
    requests: dict[str, float] = field(default_factory=dict)  # status code -> count
    failures: dict[str, float] = field(default_factory=dict)  # exception class -> count
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    spend: float = 0.0
    latency_sum: float = 0.0
    latency_buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    fallbacks_ok: float = 0.0
    cooldowns: float = 0.0
    state: int = 0
    cooled_down: bool = False

    @property
    def provider(self) -> str:
        """Provider prefix of ``model``."""
        return self.model.split("/", 1)[0]

    @property
    def bare(self) -> str:
        """``model`` without provider (``litellm_model_name`` on metrics)."""
        return self.model.split("/", 1)[-1]


def default_deployments(upstream: str = "http://127.0.0.1:18080/v1") -> list[Deployment]:
    """Chat, embedding, reranker and a chat deployment that fails over to ``fake-chat``."""
    return [
        Deployment("fake-chat", "fake-chat-deployment-1", "openai/fake-gpt", "chat", upstream),
        Deployment(
            "fake-embedding",
            "fake-embedding-deployment-1",
            "openai/fake-embed",
            "embedding",
            upstream,
            input_cost=1e-07,
            output_cost=0.0,
        ),
        Deployment(
            "fake-rerank",
            "fake-rerank-deployment-1",
            "hosted_vllm/fake-rerank",
            "rerank",
            upstream + "/rerank",
            input_cost=0.0,
            output_cost=0.0,
        ),
        Deployment(
            "failing-chat",
            "failing-chat-deployment-1",
            "openai/fake-gpt",
            "chat",
            upstream.replace("/v1", "/fail/v1"),
            fallback="fake-chat",
        ),
    ]


def _error(status: int, message: str, kind: str, param: str | None = "None") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": str(status)}}
    return web.json_response(body, status=status)


# The labels LiteLLM puts on a request made with the master key, and on its own health-check probes.
_CALLER_LABELS = {
    "api_key_alias": "None",
    "hashed_api_key": MASTER_HASH,
    "team": "None",
    "team_alias": "None",
    "user": "default_user_id",
    "end_user": "None",
    "org_id": "None",
    "org_alias": "None",
}
_PROBE_LABELS = {
    "api_key_alias": HEALTH_KEY,
    "hashed_api_key": HEALTH_KEY,
    "team": HEALTH_KEY,
    "team_alias": HEALTH_KEY,
    "user": "None",
    "end_user": "None",
    "org_id": "None",
    "org_alias": "None",
}


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class SimulatedLitellm:
    """One simulated LiteLLM proxy (see the module docstring for its knobs)."""

    def __init__(
        self,
        key: str,
        deployments: list[Deployment] | None = None,
        *,
        version: str = "1.106.2",
        metrics: str = "prometheus",
        scenario: str = "healthy",
    ) -> None:
        self.key = key
        self.deployments = deployments if deployments is not None else default_deployments()
        self.version = version
        self.metrics = metrics
        self.scenario = scenario
        self.fault: str | None = None
        self.retry_after_s = 2
        self.in_flight = 0
        self.calls: dict[str, int] = {}
        self.apply_scenario(scenario)

    # ---- traffic ----------------------------------------------------------------------------------

    def apply_scenario(self, scenario: str) -> None:
        """``healthy``, ``failing`` (``failing-chat`` fails, falls back) or ``upstream_429``."""
        self.scenario = scenario
        for d in self.deployments:
            d.failing = scenario == "failing" and bool(d.fallback)
            d.rate_limited = scenario == "upstream_429" and d.group == "fake-chat"
            if not d.failing and not d.rate_limited and d.state:
                d.state = 0  # recovered: the group-named series stays latched at 2, as in the real proxy

    def set_deployment(
        self,
        group: str,
        *,
        failing: bool | None = None,
        rate_limited: bool | None = None,
        price_multiplier: float | None = None,
    ) -> None:
        """Switch one deployment's knobs (an alert scenario); a recovered deployment's state goes back to 0."""
        d = self._by_group(group)
        if d is None:
            raise KeyError(group)
        if failing is not None:
            d.failing = failing
        if rate_limited is not None:
            d.rate_limited = rate_limited
        if price_multiplier is not None:
            d.price_multiplier = price_multiplier
        if not d.failing and not d.rate_limited:
            d.state = 0

    def restart(self) -> None:
        """A proxy restart: every counter and gauge starts from zero."""
        self.deployments = [
            Deployment(d.group, d.model_id, d.model, d.mode, d.api_base, d.input_cost, d.output_cost, d.fallback)
            for d in self.deployments
        ]
        self.apply_scenario(self.scenario)

    def _by_group(self, group: str) -> Deployment | None:
        return next((d for d in self.deployments if d.group == group), None)

    def _ok(self, d: Deployment, latency: float, prompt: int, completion: int, *, requested: str) -> None:
        d.requests["200"] = d.requests.get("200", 0.0) + 1
        d.input_tokens += prompt
        d.output_tokens += completion
        d.spend += (prompt * d.input_cost + completion * d.output_cost) * d.price_multiplier
        d.latency_sum += latency
        for i, le in enumerate(BUCKETS):
            if latency <= le:
                d.latency_buckets[i] += 1
        if requested != d.group:
            origin = self._by_group(requested)
            if origin is not None:
                origin.fallbacks_ok += 1

    def request(self, group: str, prompt: int = 12, completion: int = 8) -> int:
        """Simulate one client request to ``group``; returns the HTTP status the client got."""
        d = self._by_group(group)
        if d is None:
            return 400
        prompt = 0 if d.mode == "rerank" else prompt
        completion = completion if d.mode == "chat" else 0
        if d.rate_limited:
            d.requests["429"] = d.requests.get("429", 0.0) + 1
            d.failures["Openai.RateLimitError"] = d.failures.get("Openai.RateLimitError", 0.0) + 1
            d.state, d.cooled_down = 1, True
            d.cooldowns += 1
            return 429
        if d.failing:
            d.failures["Openai.InternalServerError"] = d.failures.get("Openai.InternalServerError", 0.0) + 1
            if not d.cooled_down:
                d.cooldowns += 1
            d.state, d.cooled_down = 1, True
            target = self._by_group(d.fallback)
            if target is None or target.failing:
                d.requests["500"] = d.requests.get("500", 0.0) + 1
                return 500
            self._ok(target, 0.08, prompt, completion, requested=group)
            return 200
        self._ok(d, 0.02 + 0.01 * (prompt % 7), prompt, completion, requested=group)
        return 200

    def traffic(self, rounds: int = 1) -> None:
        """A few requests to every group."""
        for _ in range(rounds):
            for d in list(self.deployments):
                self.request(d.group)

    # ---- shapes ------------------------------------------------------------------------------------

    def model_info(self) -> dict[str, Any]:
        """``/model/info``."""
        rows: list[dict[str, Any]] = []
        for d in self.deployments:
            row: dict[str, Any] = {
                "model_name": d.group,
                "litellm_params": {"api_base": d.api_base, "use_in_pass_through": False, "model": d.model},
                "model_info": {
                    "input_cost_per_token": d.input_cost,
                    "output_cost_per_token": d.output_cost,
                    "id": d.model_id,
                    "db_model": False,
                    "mode": d.mode,
                    "max_tokens": 4096 if d.mode == "chat" else None,
                    "max_input_tokens": 8192 if d.mode == "chat" else None,
                    "litellm_provider": d.provider,
                    "supports_function_calling": d.mode == "chat",
                },
            }
            if self.fault == "bad_model_info":
                row["brand_new_field"] = {"nested": [1, 2]}
                if d.mode == "embedding":
                    del row["model_info"]
            rows.append(row)
        return {"data": rows}

    def model_group_info(self) -> dict[str, Any]:
        """``/model_group/info``."""
        return {
            "data": [
                {
                    "model_group": d.group,
                    "providers": [d.provider],
                    "mode": d.mode,
                    "max_input_tokens": 8192.0 if d.mode == "chat" else None,
                    "input_cost_per_token": d.input_cost,
                    "output_cost_per_token": d.output_cost,
                    "tpm": None,
                    "rpm": None,
                    "supported_openai_params": [],
                    "is_public_model_group": False,
                    "health_status": None,
                }
                for d in self.deployments
            ]
        }

    def v1_models(self) -> dict[str, Any]:
        """``/v1/models``."""
        return {
            "data": [
                {"id": d.group, "object": "model", "created": 1677610602, "owned_by": "openai", "mode": d.mode}
                for d in self.deployments
            ],
            "object": "list",
        }

    def health(self) -> dict[str, Any]:
        """``/health`` (what background health checks cached)."""
        ok = [d for d in self.deployments if not (d.failing or d.rate_limited)]
        bad = [d for d in self.deployments if d.failing or d.rate_limited]
        return {
            "healthy_endpoints": [{"api_base": d.api_base, "model": d.model, "model_id": d.model_id} for d in ok],
            "unhealthy_endpoints": [
                {
                    "api_base": d.api_base,
                    "model": d.model,
                    "model_id": d.model_id,
                    "error": "litellm.InternalServerError: simulated",
                }
                for d in bad
            ],
            "healthy_count": len(ok),
            "unhealthy_count": len(bad),
        }

    def exposition(self) -> str:
        """``/metrics/`` for this version and metrics mode."""
        old = self.version.startswith(("1.6", "1.7")) and not self.version.startswith("1.76")
        if self.metrics == "licence_gated":
            return (
                "# HELP litellm_not_a_premium_user_metric_total Prometheus is an enterprise feature\n"
                "# TYPE litellm_not_a_premium_user_metric_total counter\n"
                f'litellm_not_a_premium_user_metric_total{{litellm_version="{self.version}"}} 1.0\n'
            )
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, lines: list[str]) -> None:
            name = name + "_total" if kind == "counter" else name  # text 0.0.4: prometheus_client's spelling
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
            out.extend(lines)

        requests, failed, tokens_in, tokens_out, tokens_all, spend, lat = [], [], [], [], [], [], []
        state, cooled, dep_fail, fallback, remaining = [], [], [], [], []
        req_name = "litellm_requests_metric_total" if old else "litellm_proxy_total_requests_metric_total"
        fail_name = (
            "litellm_llm_api_failed_requests_metric_total" if old else "litellm_proxy_failed_requests_metric_total"
        )
        tok = "" if old else "_metric"
        for d in self.deployments:
            base = {"requested_model": d.group, "model_id": d.model_id, "api_provider": d.provider}
            if old:
                requests.append(
                    f"{req_name}{_labels(**_CALLER_LABELS, model=d.bare, requested_model=d.group)} "
                    f"{float(sum(d.requests.values()))}\n"
                )
            else:
                requests.append(
                    f"{req_name}{_labels(**_PROBE_LABELS, requested_model='', model_id='', status_code='200', api_provider=d.provider)} 2.0\n"  # noqa: E501
                )
                for code, n in sorted(d.requests.items()):
                    requests.append(f"{req_name}{_labels(**_CALLER_LABELS, **base, status_code=code)} {n}\n")
            for exc, n in sorted(d.failures.items()):
                status = "429" if "RateLimit" in exc else "500"
                failure = _labels(**_CALLER_LABELS, **base, exception_class=exc, exception_status=status)
                failed.append(f"{fail_name}{failure} {n}\n")
            labels = _labels(**_CALLER_LABELS, **base, model=d.bare)
            tokens_in.append(f"litellm_input_tokens{tok}_total{labels} {d.input_tokens}\n")
            tokens_out.append(f"litellm_output_tokens{tok}_total{labels} {d.output_tokens}\n")
            tokens_all.append(f"litellm_total_tokens{tok}_total{labels} {d.input_tokens + d.output_tokens}\n")
            spend.append(f"litellm_spend_metric_total{labels} {d.spend}\n")
            count = d.requests.get("200", 0.0)
            hl = {**_CALLER_LABELS, **base, "model": d.bare, "model_group": d.group}
            for le, n in zip(BUCKETS, d.latency_buckets, strict=True):
                lat.append(f"litellm_request_total_latency_metric_bucket{_labels(**hl, le=str(le))} {n}\n")
            lat.append(f"litellm_request_total_latency_metric_bucket{_labels(**hl, le='+Inf')} {count}\n")
            lat.append(f"litellm_request_total_latency_metric_count{_labels(**hl)} {count}\n")
            lat.append(f"litellm_request_total_latency_metric_sum{_labels(**hl)} {d.latency_sum}\n")
            dep = {"api_base": d.api_base, "api_provider": d.provider, "model_id": d.model_id}
            state.append(f"litellm_deployment_state{_labels(**dep, litellm_model_name=d.bare)} {float(d.state)}\n")
            state.append(
                f"litellm_deployment_state{_labels(**{**dep, 'model_id': ''}, litellm_model_name=d.bare)} 0.0\n"
            )  # health-probe series
            if d.cooled_down:  # latched: stays at 2 after recovery
                state.append(f"litellm_deployment_state{_labels(**dep, litellm_model_name=d.group)} 2.0\n")
                cooled.append(
                    f"litellm_deployment_cooled_down_total{_labels(**dep, litellm_model_name=d.group, exception_status='500')} {d.cooldowns}\n"  # noqa: E501
                )
            if d.failures:
                dep_fail.append(
                    f"litellm_deployment_failure_responses_total{_labels(**dep, **_CALLER_LABELS, litellm_model_name=d.bare, requested_model=d.group, model_group=d.group, exception_status='500', exception_class='Openai.InternalServerError')} {sum(d.failures.values())}\n"  # noqa: E501
                )
            if d.fallbacks_ok:
                fallback.append(
                    f"litellm_deployment_successful_fallbacks_total{_labels(**_CALLER_LABELS, requested_model=d.group, fallback_model=d.fallback, model_id='None', exception_class='Openai.InternalServerError', exception_status='500')} {d.fallbacks_ok}\n"  # noqa: E501
                )
            left = 0.0 if d.rate_limited else 999.0 - min(998.0, d.requests.get("200", 0.0))
            rname = (
                "litellm_remaining_requests"
                if old or self.version.startswith("1.80")
                else "litellm_remaining_requests_metric"
            )
            remaining.append(
                f"{rname}{_labels(**dep, api_key_alias='None', hashed_api_key=MASTER_HASH, litellm_model_name=d.bare, model_group=d.group)} {left}\n"  # noqa: E501
            )
        family(
            req_name.removesuffix("_total"), "counter", "Total number of requests made to the proxy server", requests
        )
        family(fail_name.removesuffix("_total"), "counter", "Total number of failed responses from proxy", failed)
        family(f"litellm_input_tokens{tok}", "counter", "Total number of input tokens from LLM requests", tokens_in)
        family(f"litellm_output_tokens{tok}", "counter", "Total number of output tokens", tokens_out)
        family(f"litellm_total_tokens{tok}", "counter", "Total number of input + output tokens", tokens_all)
        family("litellm_spend_metric", "counter", "Total spend on LLM requests", spend)
        family("litellm_request_total_latency_metric", "histogram", "Total latency (seconds) for a request", lat)
        family(
            "litellm_deployment_state",
            "gauge",
            "LLM Deployment Analytics - The state of the deployment: "
            "0 = healthy, 1 = partial outage, 2 = complete outage",
            state,
        )
        family("litellm_deployment_cooled_down", "counter", "Number of times a deployment has been cooled down", cooled)
        family("litellm_deployment_failure_responses", "counter", "Total LLM API failures per deployment", dep_fail)
        family("litellm_deployment_successful_fallbacks", "counter", "Successful fallbacks", fallback)
        family(
            "litellm_remaining_requests_metric" if "_metric" in remaining[0] else "litellm_remaining_requests",
            "gauge",
            "remaining requests for model, returned from LLM API Provider",
            remaining,
        )
        if not old:
            family(
                "litellm_in_flight_requests",
                "gauge",
                "Number of HTTP requests currently in-flight",
                [f"litellm_in_flight_requests {float(self.in_flight)}\n"],
            )
        return "".join(out)

    # ---- HTTP ----------------------------------------------------------------------------------------

    def _presented_key(self, request: web.Request) -> str | None:
        header = request.headers.get("x-litellm-api-key") or request.headers.get("authorization")
        if header is None:
            return None
        return header.removeprefix("Bearer ").strip()

    def _auth(self, request: web.Request, *, metrics: bool = False) -> web.Response | None:
        key = self._presented_key(request)
        if key is None:
            if metrics:
                return web.json_response(
                    "Unauthorized access to metrics endpoint: Authentication Error, Malformed API Key passed in. "
                    "Ensure Key has `Bearer ` prefix." + _METRICS_OPT_OUT,
                    status=401,
                )
            return _error(401, "Authentication Error, No api key passed in.", "auth_error")
        if key != self.key:
            if metrics:
                return web.json_response(
                    "Unauthorized access to metrics endpoint: No connected db." + _METRICS_OPT_OUT, status=401
                )
            return _error(400, "No connected db.", "no_db_connection", None)
        return None

    def _gate(self, request: web.Request, *, keyed: bool = True, metrics: bool = False) -> web.Response | None:
        path = request.path
        self.calls[path] = self.calls.get(path, 0) + 1
        if self.fault == "restarting":
            return web.Response(status=503, text="restarting")
        if keyed:
            denied = self._auth(request, metrics=metrics)
            if denied is not None:
                return denied
            if self.fault == "429":
                return web.json_response(
                    {
                        "error": {
                            "message": "Rate limit exceeded",
                            "type": "throttling_error",
                            "param": "None",
                            "code": "429",
                        }
                    },
                    status=429,
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            if self.fault == "500":
                return web.Response(status=500, text="Internal Server Error")
        return None

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()

        async def liveliness(request: web.Request) -> web.Response:
            return self._gate(request, keyed=False) or web.json_response("I'm alive!")

        async def readiness(request: web.Request) -> web.Response:
            return self._gate(request, keyed=False) or web.json_response({"status": "healthy", "db": "Not connected"})

        async def details(request: web.Request) -> web.Response:
            return self._gate(request) or web.json_response(
                {
                    "status": "healthy",
                    "db": "Not connected",
                    "cache": None,
                    "litellm_version": self.version,
                    "success_callbacks": ["sync_deployment_callback_on_success", "PrometheusLogger"]
                    if self.metrics == "prometheus"
                    else ["sync_deployment_callback_on_success"],
                    "use_aiohttp_transport": True,
                    "log_level": "WARNING",
                    "is_detailed_debug": False,
                }
            )

        async def backlog(request: web.Request) -> web.Response:
            return self._gate(request) or web.json_response(
                {
                    "in_flight_requests": self.in_flight,
                    "admitted_requests": 0,
                    "queued_requests": 0,
                    "rejected_requests": 0,
                }
            )

        async def health(request: web.Request) -> web.Response:
            return self._gate(request) or web.json_response(self.health())

        async def model_info(request: web.Request) -> web.Response:
            return self._gate(request) or web.json_response(self.model_info())

        async def model_group_info(request: web.Request) -> web.Response:
            return self._gate(request) or web.json_response(self.model_group_info())

        async def models(request: web.Request) -> web.Response:
            return self._gate(request) or web.json_response(self.v1_models())

        async def metrics_redirect(request: web.Request) -> web.Response:
            denied = self._gate(request, metrics=True)
            if denied is not None:
                return denied
            return web.Response(status=307, headers={"location": str(request.url.with_path("/metrics/"))})

        async def metrics(request: web.Request) -> web.Response:
            denied = self._gate(request, metrics=True)
            if denied is not None:
                return denied
            if self.metrics == "absent":
                return web.json_response({"detail": "Not Found"}, status=404)
            return web.Response(body=self.exposition().encode(), headers={"content-type": METRICS_CONTENT_TYPE})

        app.router.add_get("/health/liveliness", liveliness)
        app.router.add_get("/health/liveness", liveliness)
        app.router.add_get("/health/readiness", readiness)
        app.router.add_get("/health/readiness/details", details)
        app.router.add_get("/health/backlog", backlog)
        app.router.add_get("/health", health)
        app.router.add_get("/model/info", model_info)
        app.router.add_get("/v1/model/info", model_info)
        app.router.add_get("/model_group/info", model_group_info)
        app.router.add_get("/v1/models", models)
        app.router.add_get("/models", models)
        app.router.add_get("/metrics", metrics_redirect)
        app.router.add_get("/metrics/", metrics)
        return app


async def serve(sim: SimulatedLitellm, host: str = "127.0.0.1", port: int = 0) -> tuple[str, web.AppRunner]:
    """Serve ``sim`` on ``host:port`` (0: a free port); returns the base URL and the runner."""
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock)
    await site.start()
    return f"http://{host}:{sock.getsockname()[1]}", runner


async def _scenario_loop(sim: SimulatedLitellm, *, cycle: bool = True) -> None:
    """Steady traffic; with ``cycle``, every few minutes the failing deployment recovers for a while, then fails
    again."""
    tick = 0
    while True:
        sim.in_flight = 1 + tick % 3
        sim.traffic(1 + int(2 + 2 * math.sin(tick / 10)))
        if cycle and tick % 120 == 60:
            sim.apply_scenario("healthy")
        elif cycle and tick % 120 == 0:
            sim.apply_scenario("failing")
        tick += 1
        await asyncio.sleep(1.0)


def demo_scenarios(sim: SimulatedLitellm, proxy: str, edge: SimulatedLitellm, edge_proxy: str) -> list[Scenario]:
    """The LiteLLM alert scenarios: deployments of ``sim`` (polled as ``proxy``) and the whole ``edge`` proxy."""
    from inferwatch.simulators.scenarios import Scenario

    def deployment(group: str, **on: Any) -> tuple[Callable[[], None], Callable[[], None]]:
        off: dict[str, Any] = {k: (1.0 if k == "price_multiplier" else False) for k in on}
        return (lambda: sim.set_deployment(group, **on)), (lambda: sim.set_deployment(group, **off))

    def edge_fault(on: bool) -> None:
        edge.fault = "restarting" if on else None

    specs = [
        (
            "litellm_deployment_unhealthy",
            "LitellmDeploymentUnhealthy",
            "canary-chat",
            deployment("canary-chat", rate_limited=True),
            "the canary-chat deployment's upstream answers 429",
        ),
        (
            "litellm_fallbacks",
            "LitellmFallbacks",
            "failing-chat",
            deployment("failing-chat", failing=True),
            "failing-chat's upstream fails; requests fall back to fake-chat",
        ),
        (
            "litellm_error_rate_high",
            "LitellmErrorRateHigh",
            "fake-embedding",
            deployment("fake-embedding", failing=True),
            "fake-embedding's upstream fails with no fallback: 500s",
        ),
        (
            "litellm_spend_rate_high",
            "LitellmSpendRateHigh",
            "fake-chat",
            deployment("fake-chat", price_multiplier=100_000.0),
            "fake-chat tokens cost 100 000 times more",
        ),
    ]
    scenarios = [
        Scenario(name, alert, description, start, stop, labels={"proxy": proxy, "model_group": group})
        for name, alert, group, (start, stop), description in specs
    ]
    scenarios.append(
        Scenario(
            "litellm_proxy_down",
            "LitellmProxyDown",
            f"the {edge_proxy} proxy answers 503 on every endpoint (restarting)",
            lambda: edge_fault(True),
            lambda: edge_fault(False),
            labels={"proxy": edge_proxy},
        )
    )
    return scenarios


async def start_demo() -> Demo:
    """Hook for ``inferwatch up --demo``: a proxy with chat, embedding and reranker models, one failing over, and a
    second (``demo-litellm-edge``, in an ``INFERWATCH_CONFIG`` file) for the proxy-down scenario.

    Under ``INFERWATCH_SIM_CALM=1`` every deployment starts healthy and stays so until a scenario says otherwise.
    """
    import shutil
    import tempfile

    import yaml  # type: ignore[import-untyped]

    from inferwatch.simulators.demo import Demo
    from inferwatch.simulators.scenarios import CALM_ENV

    calm = os.environ.get(CALM_ENV) == "1"
    key = "sk-demo-" + os.urandom(8).hex()
    deployments = default_deployments()
    # a deployment of its own for the unhealthy scenario, named unlike its model: the proxy's cooldown latches the
    # group-named state series at 2, so a deployment whose group and model names match never shows its recovery
    deployments.append(
        Deployment("canary-chat", "canary-chat-deployment-1", "openai/fake-gpt-canary", "chat", deployments[0].api_base)
    )
    sim = SimulatedLitellm(key, deployments, scenario="healthy" if calm else "failing")
    sim.traffic(5)
    url, runner = await serve(sim)
    edge_key = "sk-demo-" + os.urandom(8).hex()
    edge = SimulatedLitellm(edge_key)
    edge.traffic(5)
    edge_url, edge_runner = await serve(edge)
    tmpdir = tempfile.mkdtemp(prefix="inferwatch-litellm-")
    config = os.path.join(tmpdir, "litellm.yaml")
    proxies = [{"name": "demo-litellm-edge", "url": edge_url, "key": edge_key}]
    await asyncio.to_thread(Path(config).write_text, yaml.safe_dump({"litellm": {"proxies": proxies}}), "utf-8")

    async def run() -> None:
        await asyncio.gather(_scenario_loop(sim, cycle=not calm), _scenario_loop(edge, cycle=False))

    return Demo(
        env={
            "INFERWATCH_LITELLM_URL": url,
            "INFERWATCH_LITELLM_KEY": key,
            "INFERWATCH_LITELLM_NAME": "demo-litellm",
            "INFERWATCH_CONFIG": config,
        },
        runners=[runner, edge_runner],
        run=run,
        scenarios=demo_scenarios(sim, "demo-litellm", edge, "demo-litellm-edge"),
        cleanup=[lambda: shutil.rmtree(tmpdir, ignore_errors=True)],
    )


def _main() -> None:  # pragma: no cover - manual use
    async def go() -> None:
        sim = SimulatedLitellm(os.environ.get("LITELLM_MASTER_KEY", "sk-sim"), scenario="failing")
        sim.traffic(3)
        url, runner = await serve(sim, port=int(os.environ.get("PORT", "4000")))
        print(json.dumps({"url": url}), flush=True)
        try:
            await _scenario_loop(sim)
        finally:
            await runner.cleanup()

    asyncio.run(go())


if __name__ == "__main__":  # pragma: no cover
    _main()

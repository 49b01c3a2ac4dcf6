"""litellm-poller's pure parts over responses captured from a real LiteLLM 1.106.2 proxy (tests/fixtures/litellm)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from inferwatch.services.aggregator.domains.litellm import render_litellm
from inferwatch.services.aggregator.render import SeriesWriter, render_exposition
from inferwatch.services.litellm_poller.config import LitellmPollerConfig
from inferwatch.services.litellm_poller.core import (
    WANTED,
    apply_deployment_state,
    classify_model,
    deployment_metrics,
    error_hint,
    error_label,
    in_flight,
    merge_group_info,
    metrics_mode,
    parse_backlog,
    parse_health,
    parse_model_group_info,
    parse_model_info,
    parse_readiness,
    status_class,
    usage_by_group,
)
from inferwatch.shared.exposition import parse_exposition
from inferwatch.shared.http import strip_credentials
from inferwatch.shared.settings import Env, SettingsError
from tests.support import FIXTURES

FIX = FIXTURES / "litellm"


def load(name: str) -> object:
    return json.loads((FIX / name).read_text())


def http_body(name: str) -> bytes:
    """Body of a captured ``.http`` file (request comment lines, status, headers, blank line, body)."""
    return (FIX / name).read_bytes().split(b"\n\n", 1)[1]


def families(text: bytes) -> dict:  # type: ignore[type-arg]
    return parse_exposition(text, families=WANTED)


def routes_from_capture() -> list:  # type: ignore[type-arg]
    return parse_model_info(load("model-info.json"))


# ---- classification ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "names", "expected"),
    [
        ("chat", ("x",), "llm"),
        ("completion", (), "llm"),
        ("responses", (), "llm"),
        ("embedding", (), "embedding"),
        ("rerank", (), "reranker"),
        ("image_generation", (), "image"),
        ("audio_transcription", (), "audio"),
        ("audio_speech", (), "audio"),
        ("", ("bge-reranker-v2-m3",), "reranker"),
        (None, ("text-embedding-3-small",), "embedding"),
        ("", ("openai/whisper-1",), "audio"),
        ("", ("dall-e-3",), "image"),
        ("", ("Qwen/Qwen2.5-7B-Instruct",), "llm"),
        ("moderation", ("omni-moderation",), "other"),
        ("", ("zzz",), "other"),
    ],
)
def test_classify_model(mode: object, names: tuple[str, ...], expected: str) -> None:
    assert classify_model(mode, *names) == expected


# ---- JSON endpoints -----------------------------------------------------------------------------------


def test_model_info_capture() -> None:
    routes = {r.deployment_id: r for r in routes_from_capture()}
    assert len(routes) == 7
    chat = routes["fake-chat-deployment-1"]
    assert (chat.model_group, chat.model_type, chat.mode, chat.provider) == ("fake-chat", "llm", "chat", "openai")
    assert (chat.input_cost_per_token, chat.output_cost_per_token) == (1e-06, 2e-06)
    assert (chat.max_tokens, chat.max_input_tokens, chat.max_output_tokens) == (4096, 8192, 4096)
    assert chat.api_base == "http://127.0.0.1:18080/v1"
    assert routes["fake-embedding-deployment-1"].model_type == "embedding"
    rerank = routes["fake-rerank-deployment-1"]
    assert (rerank.model_type, rerank.provider) == ("reranker", "hosted_vllm")
    assert routes["dead-chat-deployment-1"].api_base == "http://127.0.0.1:9/v1"
    assert all(r.status == "unknown" for r in routes.values())


def test_model_info_unknown_fields_and_missing_model_info() -> None:
    raw = {
        "data": [
            {
                "model_name": "bge-embed",
                "litellm_params": {
                    "model": "hosted_vllm/BAAI/bge-m3",
                    "api_base": "https://user:pw@emb.internal:8000/v1?key=s",
                },
                "whatever_new": [1, {"x": 2}],
            },
            {"model_name": "chat", "model_info": None, "litellm_params": None},
            {
                "model_name": "rr",
                "model_info": {
                    "id": "rr-1",
                    "mode": "rerank",
                    "input_cost_per_token": "cheap",
                    "max_tokens": None,
                    "new_field": True,
                },
            },
            "garbage",
            {"no_name": 1},
        ],
        "extra": True,
    }
    routes = parse_model_info(raw)
    assert [(r.model_group, r.deployment_id, r.model_type) for r in routes] == [
        ("bge-embed", "bge-embed#0", "embedding"),
        ("chat", "chat#1", "llm"),
        ("rr", "rr-1", "reranker"),
    ]
    assert routes[0].api_base == "https://emb.internal:8000/v1"  # credentials and query stripped
    assert routes[0].provider == "hosted_vllm"
    assert routes[2].input_cost_per_token == 0.0
    assert routes[2].max_tokens == 0


@pytest.mark.parametrize("raw", [None, [], {"data": None}, {"detail": "Not Found"}, "I'm alive!"])
def test_model_info_not_a_list(raw: object) -> None:
    with pytest.raises(ValueError, match="/model/info"):
        parse_model_info(raw)


def test_model_group_info_capture_and_merge() -> None:
    groups = parse_model_group_info(load("model-group-info.json"))
    assert groups["fake-chat"]["mode"] == "chat"
    assert groups["fake-chat"]["providers"] == ["openai"]
    assert groups["fake-rerank"]["mode"] == "rerank"
    bare = parse_model_info({"data": [{"model_name": "fake-rerank"}, {"model_name": "fake-chat"}]})
    merged = {r.model_group: r for r in merge_group_info(bare, groups)}
    assert merged["fake-rerank"].model_type == "reranker"
    assert merged["fake-chat"].input_cost_per_token == groups["fake-chat"]["input_cost_per_token"]
    assert merged["fake-chat"].provider == "openai"
    with pytest.raises(ValueError, match="/model_group/info"):
        parse_model_group_info({"data": "x"})


def test_readiness_captures() -> None:
    plain = parse_readiness(load("health-readiness.json"))
    assert (plain.ready, plain.db_status, plain.version, plain.callbacks) == (True, "Not connected", "", ())
    for name in ("health-readiness-details.json", "health-readiness-details-before-traffic.json"):
        details = parse_readiness(load(name))
        assert details.version == "1.106.2"
        assert "PrometheusLogger" in details.callbacks
    assert not parse_readiness({"status": "shutting_down"}).ready
    with pytest.raises(ValueError, match="no status"):
        parse_readiness(load("health-liveliness.json"))  # "I'm alive!" is a JSON string


def test_backlog_and_health_captures() -> None:
    assert parse_backlog(load("health-backlog.json")) == {
        "in_flight_requests": 1.0,
        "queued_requests": 0.0,
        "rejected_requests": 0.0,
    }
    health = parse_health(load("health-with-key.json"))
    assert health["fake-chat-deployment-1"] == "healthy"
    assert health["failing-chat-deployment-1"] == "outage"
    assert health["dead-chat-deployment-1"] == "outage"
    for bad in ("health-no-key.json", "health-bad-key.json"):
        with pytest.raises(ValueError, match="healthy_endpoints"):
            parse_health(load(bad))


def test_error_labels_and_hints() -> None:
    assert error_label("http_4xx", 400) == "http_400"
    assert error_label("connect_error", None) == "connect_error"
    assert "no_db_connection" in error_hint(400)
    assert "KEY" in error_hint(401)
    assert error_hint(None) == "proxy unreachable"
    body = load("health-bad-key.json")
    assert body["error"]["type"] == "no_db_connection"
    assert body["error"]["code"] == "400"


def test_strip_credentials() -> None:
    assert strip_credentials("http://a:b@[::1]:4000/v1?api_key=x#f") == "http://[::1]:4000/v1"


# ---- Prometheus ---------------------------------------------------------------------------------------


def raw_sum(text: str, name: str, group: str, label: str = "requested_model") -> float:
    """Independent reference: sum the raw capture's samples for ``group``, skipping internal health checks."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and f'{label}="{group}"' in line and "litellm-internal-health-check" not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_capture_matches_raw_exposition() -> None:
    body = http_body("metrics.http")
    text = body.decode()
    fams = families(body)
    assert metrics_mode(fams) == "prometheus"
    usage = {u.model_group: u for u in usage_by_group(fams)}
    assert "" not in usage  # health-check series (requested_model="") aggregated away
    chat = usage["fake-chat"]
    assert sum(chat.requests_total.values()) == raw_sum(text, "litellm_proxy_total_requests_metric_total", "fake-chat")
    assert chat.requests_total == {"2xx": 26.0, "4xx": 1.0}
    assert chat.input_tokens_total == raw_sum(text, "litellm_input_tokens_metric_total", "fake-chat")
    assert chat.output_tokens_total == raw_sum(text, "litellm_output_tokens_metric_total", "fake-chat")
    assert chat.tokens_total == raw_sum(text, "litellm_total_tokens_metric_total", "fake-chat")
    assert chat.spend_usd_total == pytest.approx(raw_sum(text, "litellm_spend_metric_total", "fake-chat"))
    assert chat.request_latency_seconds is not None
    assert chat.request_latency_seconds.count == raw_sum(
        text, "litellm_request_total_latency_metric_count", "fake-chat"
    )
    assert chat.time_to_first_token_seconds is not None
    assert chat.llm_api_latency_seconds is not None
    assert (
        usage["failing-chat"].fallbacks_ok_total
        == raw_sum(text, "litellm_deployment_successful_fallbacks_total", "failing-chat")
        == 5.0
    )
    assert usage["failing-chat"].requests_total == {"none": 2.0}  # refused by cooldown: status_code="None"
    assert usage["dead-chat"].errors_total == {"Openai.InternalServerError": 2.0, "RouterRateLimitError": 1.0}
    assert usage["ratelimited-chat"].errors_total == {"Openai.RateLimitError": 2.0}
    assert in_flight(fams) == 1.0
    # No API key, team or user survives aggregation.
    dumped = json.dumps([str(u) for u in usage.values()])
    assert "litellm_proxy_master_key" not in dumped
    assert "default_user_id" not in dumped


def test_deployment_state_capture() -> None:
    fams = families(http_body("metrics.http"))
    routes = routes_from_capture()
    dm = deployment_metrics(fams, {r.deployment_id: r.model_group for r in routes})
    out = {r.deployment_id: r for r in apply_deployment_state(routes, dm)}
    assert out["fake-chat-deployment-1"].status == "healthy"
    assert out["fake-rerank-deployment-1"].status == "healthy"
    for bad in ("failing-chat", "dead-chat", "ratelimited-chat"):
        r = out[f"{bad}-deployment-1"]
        assert (r.status, r.cooldowns_total) == ("outage", 1.0), bad
    assert out["flaky-chat-deployment-1"].status == "unknown"  # no series with its id yet
    assert out["fake-chat-deployment-1"].remaining_requests is not None
    # /health (opt-in) wins over the gauge
    health = parse_health(load("health-with-key.json"))
    assert {r.deployment_id: r.status for r in apply_deployment_state(routes, dm, health)}[
        "flaky-chat-deployment-1"
    ] == "healthy"


def test_flaky_outage_recovery_latch() -> None:
    """The group-named series stays at 2 after recovery: healthy + latched, not an outage."""
    sections = re.split(r"^## ", (FIX / "flaky-outage-recovery.txt").read_text(), flags=re.M)[1:]
    states = []
    for section in sections:
        lines = "\n".join(line for line in section.splitlines() if line.startswith("litellm_deployment_state"))
        exposition = ("# TYPE litellm_deployment_state gauge\n" + lines + "\n").encode()
        dm = deployment_metrics(families(exposition), {"flaky-chat-deployment-1": "flaky-chat"})
        d = dm.get("flaky-chat-deployment-1")
        states.append((d.state, d.latched) if d else (None, False))
    assert states[0] == (0, False)
    assert (2, False) in states  # failing and cooled down
    assert states[-1] == (0, True)  # recovered, the cooldown series latched at 2


def test_fallback_counters_capture() -> None:
    # The capture is grep output: no TYPE lines, so the parser sees untyped ``*_total`` families.
    usage = {u.model_group: u for u in usage_by_group(families((FIX / "metrics-fallbacks.txt").read_bytes()))}
    assert usage["failing-chat"].fallbacks_ok_total == 5.0
    assert usage["flaky-chat"].fallbacks_failed_total == 2.0


def test_before_traffic_capture() -> None:
    fams = families(http_body("metrics-before-traffic.http"))
    assert metrics_mode(fams) == "prometheus"
    assert all(not u.model_group.startswith("litellm") for u in usage_by_group(fams))


def test_older_litellm_names() -> None:
    fams = families((FIX / "metrics-old-1.70.txt").read_bytes())
    usage = {u.model_group: u for u in usage_by_group(fams)}
    old = usage["fake-gpt"]  # 1.70 has no requested_model: the bare model name is the key
    assert old.requests_total == {"success": 12.0, "failure": 3.0}
    assert (old.tokens_total, old.input_tokens_total, old.spend_usd_total) == (250.0, 120.0, 0.5)
    dm = deployment_metrics(fams, {"fake-chat-deployment-1": "fake-chat"})
    assert (dm["fake-chat-deployment-1"].state, dm["fake-chat-deployment-1"].remaining_requests) == (1, 41.0)
    assert {"litellm_requests_metric", "litellm_total_tokens", "litellm_remaining_requests"} <= WANTED


def test_licence_gated_and_empty() -> None:
    assert metrics_mode(families((FIX / "metrics-licence-gated.txt").read_bytes())) == "licence_gated"
    assert metrics_mode(families(b"# nothing\n")) == "empty"


def test_status_class() -> None:
    assert [status_class(c) for c in ("200", "429", "None", "", "2000")] == ["2xx", "4xx", "none", "none", "none"]


def test_renderer_on_capture() -> None:
    from inferwatch.contracts.litellm import LitellmProxySnapshot

    fams = families(http_body("metrics.http"))
    routes = routes_from_capture()
    dm = deployment_metrics(fams, {r.deployment_id: r.model_group for r in routes})
    snap = LitellmProxySnapshot(
        source="p",
        observed_at=1.0,
        collector="c",
        interval_s=30,
        up=True,
        ready=True,
        metrics_mode="prometheus",
        routes=apply_deployment_state(routes, dm),
        usage=usage_by_group(fams),
        errors_total={"/model/info:http_401": 2.0},
    )
    w = SeriesWriter()
    render_litellm(snap, w)
    text = render_exposition([w.freeze()]).decode()
    parsed = parse_exposition(text.encode())
    assert (
        'inferwatch_litellm_model_info{proxy="p",model_group="fake-rerank",'
        'deployment_id="fake-rerank-deployment-1",type="reranker"'
    ) in text
    status = defaultdict(float)
    for s in parsed["inferwatch_litellm_deployment_status"].samples:
        status[(s.labels["model_group"], s.labels["status"])] = s.value
    assert status[("failing-chat", "outage")] == 1.0
    assert status[("fake-chat", "healthy")] == 1.0
    assert 'inferwatch_litellm_fallbacks_total{proxy="p",model_group="failing-chat",result="success"} 5' in text
    assert 'inferwatch_litellm_poll_errors_total{proxy="p",endpoint="/model/info",error="http_401"} 2' in text
    assert "inferwatch_litellm_request_latency_seconds_bucket" in text


# ---- config ---------------------------------------------------------------------------------------------


def test_config_env_and_files(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    cfg = LitellmPollerConfig.from_env(
        Env({"INFERWATCH_LITELLM_URL": "http://p:4000/", "INFERWATCH_LITELLM_KEY_FILE": str(key_file)})
    )
    (proxy,) = cfg.proxies
    assert (proxy.name, proxy.url, cfg.interval_s, cfg.model_info_ttl_s, cfg.health_interval_s) == (
        "default",
        "http://p:4000",
        30.0,
        300.0,
        0.0,
    )
    assert proxy.auth_headers() == {"Authorization": "Bearer sk-from-file"}
    assert "sk-from-file" not in repr(cfg)
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[[litellm.proxies]]\nname = "a"\nurl = "https://a:4000"\nkey = "k1"\ntls_ca_file = "/ca.pem"\n'
        f'[[litellm.proxies]]\nname = "b"\nurl = "http://b"\nkey_file = "{key_file}"\n'
        'key_header = "x-litellm-api-key"\n'
    )
    cfg = LitellmPollerConfig.from_env(Env({"INFERWATCH_CONFIG": str(toml)}))
    assert [(p.name, p.tls_ca_file) for p in cfg.proxies] == [("a", "/ca.pem"), ("b", "")]
    assert cfg.proxies[1].auth_headers() == {"x-litellm-api-key": "sk-from-file"}
    yml = tmp_path / "c.yaml"
    yml.write_text("litellm:\n  proxies:\n    - {name: y, url: 'http://y'}\n")
    assert [p.name for p in LitellmPollerConfig.from_env(Env({"INFERWATCH_CONFIG": str(yml)})).proxies] == ["y"]
    assert LitellmPollerConfig.from_env(Env({})).proxies == ()
    yml.write_text("litellm:\n  proxies:\n    - {name: y}\n")
    with pytest.raises(SettingsError, match="needs a url"):
        LitellmPollerConfig.from_env(Env({"INFERWATCH_CONFIG": str(yml)}))
    yml.write_text("litellm:\n  proxies:\n    - {name: default, url: 'http://y'}\n")
    with pytest.raises(SettingsError, match="unique"):
        LitellmPollerConfig.from_env(Env({"INFERWATCH_CONFIG": str(yml), "INFERWATCH_LITELLM_URL": "http://z"}))

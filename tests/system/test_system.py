"""`inferwatch up --demo` as a new user runs it: a subprocess, the aggregator's /metrics, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port
from tests.support.system import alive, descendant_pids


def _wait_for_demo_views(port: int, deadline: float) -> dict[str, set[str]]:
    """Poll the aggregator until the GPU→container join, the EPP pool, a model's cost per million tokens and the
    HF-enriched catalog show up."""
    views: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        samples = [s for f in text_string_to_metric_families(body) for s in f.samples]
        vllm_containers = {
            s.labels["container_id"]
            for s in samples
            if s.name == "inferwatch_container_info" and s.labels.get("kind") == "vllm"
        }
        views = {
            "gpu_containers": {
                s.labels["container_id"]
                for s in samples
                if s.name == "inferwatch_gpu_process_memory_used_bytes"
                and s.labels.get("container_id") in vllm_containers
            },
            "epp_pools": {
                s.labels["pool"] for s in samples if s.name == "inferwatch_epp_pool_ready_endpoints" and s.value > 0
            },
            "vllm_models": {
                m
                for s in samples
                if s.name == "inferwatch_vllm_info"
                for m in s.labels.get("models", "").split(",")
                if m
            },
            "cost_models": {
                s.labels["model_name"]
                for s in samples
                if s.name == "inferwatch_model_self_hosted_cost_usd_per_million_tokens"
                and s.labels.get("direction") == "total"
                and s.value > 0
            },
            "hf_models": {
                s.labels["model"]
                for s in samples
                if s.name == "inferwatch_model_info"
                and s.labels.get("hf_url", "").startswith("https://")
                and s.labels.get("pipeline_tag")
            },
        }
        if (
            views["gpu_containers"]
            and views["epp_pools"]
            and views["cost_models"]
            and views["vllm_models"] <= views["hf_models"]
        ):
            return views
        time.sleep(0.5)
    return views


def test_up_demo_shows_vllm_series_and_ctrl_c_leaves_no_process() -> None:
    port = free_port()
    dead_nats = f"nats://127.0.0.1:{free_port()}"  # nothing listens: `up` must start its own server
    env = {**os.environ, "NATS_URL": dead_nats, "INFERWATCH_VLLM_INTERVAL_S": "2", "INFERWATCH_LOG_LEVEL": "warning"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "up", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body, seen_after = "", None
        deadline = started + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            ups = [
                s
                for f in text_string_to_metric_families(body)
                for s in f.samples
                if s.name == "inferwatch_vllm_up" and s.value == 1
            ]
            if len(ups) >= 3:
                seen_after = time.monotonic() - started
                break
            time.sleep(0.2)
        assert seen_after is not None, f"no vLLM series on the aggregator; last body:\n{body[:2000]}"
        print(f"\nvLLM series visible {seen_after:.1f} s after `inferwatch up --demo` started")
        versions = {
            s.labels["version"]
            for f in text_string_to_metric_families(body)
            for s in f.samples
            if s.name == "inferwatch_vllm_info" and s.labels.get("version")
        }
        assert len(versions) >= 3, versions  # several vLLM generations at once
        assert "inferwatch_vllm_kv_cache_usage_ratio" in body
        # the scraper's heartbeat comes every 5 s: its first may have gone out before the aggregator subscribed
        ready_deadline = time.monotonic() + 10
        while 'inferwatch_service_ready{service="vllm-scraper"' not in body and time.monotonic() < ready_deadline:
            time.sleep(0.5)
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert 'inferwatch_service_ready{service="vllm-scraper"' in body
        descendants = descendant_pids(proc.pid)
        assert len(descendants) >= 4  # nats-server, simulators, aggregator, vllm-scraper
        # issue 6's demo: GPUs joined to their vLLM containers, an EPP pool, a catalog enriched from the HF simulator
        joined = _wait_for_demo_views(port, started + 90)
        assert joined["gpu_containers"], "no GPU process joined to a vLLM container"
        assert joined["epp_pools"], "no EPP pool with ready endpoints"
        assert joined["vllm_models"], "no served vLLM model listed"
        assert joined["vllm_models"] <= joined["hf_models"], joined  # every served vLLM model has HF metadata
        # issue 19: cost per million tokens per model from the demo's example prices, on the status page too
        assert joined["cost_models"], "no self-hosted cost per million tokens on /metrics"
        models = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()["models"]
        figures = {m["name"]: [label for label, _ in m["figures"]] for m in models}
        assert any(
            "self-hosted USD per million total tokens" in figures.get(model, []) for model in joined["cost_models"]
        ), figures
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out[-3000:]
    assert "stopped." in out
    assert "Traceback" not in out, out[-3000:]
    # a short start: what runs where, no dump of the demo's settings (those come with --verbose)
    assert f"Aggregator  http://127.0.0.1:{port}/metrics" in out
    assert "Scenarios   http://127.0.0.1:" in out
    assert "INFERWATCH_VLLM_TARGETS" not in out
    assert "{" not in out.split("stopped.")[0], out[:3000]
    time.sleep(0.5)
    assert [p for p in descendants if alive(p)] == []

"""What `inferwatch status` and `inferwatch up` print (pure text from data)."""

from __future__ import annotations

from inferwatch.services.aggregator.status_page import status_payload
from inferwatch.terminal import settings_text, status_text, table, up_summary
from tests.support.aggregator import make_aggregator


def test_table_pads_columns_and_cuts_long_cells() -> None:
    lines = table(("a", "bee"), [("x", "y" * 30), ("longer", "z")], max_width=10)
    assert lines == ["A       BEE", "x       yyyyyyyyy…", "longer  z"]


def test_status_text_shows_models_alerts_gpus_and_sources_in_the_pages_order() -> None:
    payload = status_payload(make_aggregator())
    payload["alerts"] = [{"name": "VllmTargetDown", "severity": "critical", "annotations": {"summary": "x is down"}}]
    text = status_text(payload)
    assert text.index("MODELS (1 of 2 available)") < text.index("FIRING ALERTS (1)") < text.index("SOURCES")
    model_rows = [line for line in text.splitlines() if line.startswith(("qwen3-8b", "bge-m3"))]
    assert model_rows[0].split()[:4] == ["qwen3-8b", "available", "llm", "http://10.0.0.5:8000"]
    assert "size 8.2B parameters" in model_rows[0]
    assert model_rows[1].split()[:3] == ["bge-m3", "unavailable", "embedding"]
    assert "VllmTargetDown  critical  x is down" in text
    assert "gpu/host" in text
    assert "gpu-host-1" in text
    # inferwatch's own parts: one line, not a row each
    assert "inferwatch itself: 2 sources, 0 not up (all up)" in text
    assert "up@host:1" not in text


def test_status_text_names_each_own_part_that_is_not_up() -> None:
    payload = status_payload(make_aggregator())
    payload["sources"].append(
        {
            "domain": "heartbeat",
            "kind": "service",
            "source": "gpu-agent/x",
            "state": "down",
            "error": "gone",
            "own": True,
        }
    )
    text = status_text(payload)
    assert "inferwatch itself: 3 sources, 1 not up" in text
    assert "  heartbeat/service gpu-agent/x: down gone" in text


def test_up_summary_is_short_and_names_the_urls() -> None:
    text = up_summary(
        nats="nats://127.0.0.1:4222 (existing server)",
        aggregator_url="http://127.0.0.1:9750",
        services={"vllm-scraper": "http://127.0.0.1:9752", "gpu-agent": "http://127.0.0.1:9756"},
        scenarios_url="http://127.0.0.1:9999",
    )
    assert len(text.splitlines()) == 5
    assert "http://127.0.0.1:9750/metrics" in text
    assert "status page http://127.0.0.1:9750/" in text
    assert "Collectors  vllm-scraper, gpu-agent" in text
    assert "http://127.0.0.1:9999/scenarios" in text
    assert "Scenarios" not in up_summary(nats="n", aggregator_url="a", services={})


def test_verbose_settings_mask_every_secret() -> None:
    text = settings_text(
        {"vllm-scraper": "http://127.0.0.1:9752"},
        {
            "INFERWATCH_VLLM_TARGETS": "http://a:8000",
            "INFERWATCH_LITELLM_API_KEY": "sk-marker",
            "INFERWATCH_LANGFUSE_SECRET_KEY": "sk-lf-marker",
            "NATS_PASSWORD": "pw-marker",
            "INFERWATCH_LANGFUSE_DSN": "postgresql://u:p@db/x",
        },
    )
    assert "INFERWATCH_VLLM_TARGETS=http://a:8000" in text
    assert "vllm-scraper       http://127.0.0.1:9752/readyz" in text
    assert "marker" not in text
    assert "u:p@" not in text
    assert text.count("=***") == 4


def test_up_prints_the_summary_and_only_with_verbose_the_settings() -> None:
    from argparse import Namespace

    from inferwatch.cli import up_text

    urls = {"aggregator": "http://127.0.0.1:9750", "vllm-scraper": "http://127.0.0.1:9752"}
    env = {
        "INFERWATCH_SIM_CONTROL_URL": "http://127.0.0.1:9799",
        "INFERWATCH_VLLM_TARGETS": "http://127.0.0.1:8001",
        "INFERWATCH_LITELLM_API_KEY": "sk-demo-marker",
        "HOME": "/root",
    }
    quiet = up_text(Namespace(demo=True, verbose=False), "nats://x", urls, env)
    assert quiet.splitlines()[0].endswith("up --demo")
    assert len(quiet.splitlines()) == 6
    assert "http://127.0.0.1:9799/scenarios" in quiet
    assert "INFERWATCH_VLLM_TARGETS" not in quiet
    verbose = up_text(Namespace(demo=True, verbose=True), "nats://x", urls, env)
    assert verbose.startswith(quiet)
    assert "INFERWATCH_VLLM_TARGETS=http://127.0.0.1:8001" in verbose
    assert "INFERWATCH_LITELLM_API_KEY=***" in verbose
    assert "sk-demo-marker" not in verbose
    assert "HOME" not in verbose  # only inferwatch's and NATS's settings
    # without --demo there is no scenarios line even if the variable is set
    assert "Scenarios" not in up_text(Namespace(demo=False, verbose=False), "nats://x", urls, env)

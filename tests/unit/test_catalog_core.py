"""model-catalog core: merging sightings into one entry per model, HF metadata parsing (recorded API bodies)."""

from __future__ import annotations

import json

from inferwatch.contracts.vllm import VllmInstanceSnapshot, VllmModelCard
from inferwatch.services.model_catalog.core import (
    HfInfo,
    Sighting,
    enrich,
    is_repo_id,
    merge,
    parse_hf_model,
    quantization_from_text,
)
from tests import support

FIXTURES = support.FIXTURES / "catalog"


def test_sightings_merge_into_one_entry_per_model() -> None:
    entries = merge(
        [
            Sighting(
                name="qwen3-8b",
                provider="vllm",
                model_id="Qwen/Qwen3-8B",
                endpoint="http://a:8000",
                max_context=32768,
                available=True,
                seen_at=100.0,
            ),
            Sighting(
                name="qwen3-8b",
                provider="litellm",
                model_id="hosted_vllm/qwen3-8b",
                endpoint="http://litellm:4000",
                available=False,
                seen_at=120.0,
            ),
            Sighting(name="qwen3-8b", provider="docker", seen_at=90.0),
            Sighting(name="bge-m3", provider="litellm", model_type="embedding", seen_at=50.0),
        ]
    )
    assert list(entries) == ["bge-m3", "qwen3-8b"]
    q = entries["qwen3-8b"]
    assert q.model_id == "Qwen/Qwen3-8B"  # the HF repo id wins over a provider path
    assert q.providers == ["docker", "litellm", "vllm"]
    assert q.endpoints == ["http://a:8000", "http://litellm:4000"]
    assert q.max_context == 32768
    assert q.available is True
    assert (q.first_seen, q.last_seen) == (90.0, 120.0)
    assert q.hf_url == "https://huggingface.co/Qwen/Qwen3-8B"
    assert entries["bge-m3"].model_type == "embedding"
    assert entries["bge-m3"].hf_url == ""


def test_merge_keeps_first_seen_and_enrichment_across_cycles() -> None:
    first = merge([Sighting(name="m", provider="vllm", model_id="org/m", seen_at=10.0)])
    enriched = {"m": enrich(first["m"], HfInfo(parameter_count=7_000_000_000, license="mit"))}
    again = merge([Sighting(name="m", provider="vllm", model_id="org/m", seen_at=50.0)], enriched)
    assert again["m"].first_seen == 10.0
    assert again["m"].last_seen == 50.0
    assert again["m"].parameter_count == 7_000_000_000
    assert again["m"].license == "mit"


def test_repo_ids_and_quantization_names() -> None:
    assert is_repo_id("meta-llama/Llama-3.1-8B-Instruct")
    assert not is_repo_id("/models/llama")
    assert not is_repo_id("llama")
    assert quantization_from_text("TheBloke/Mistral-7B-Instruct-v0.2-AWQ") == "awq"
    assert quantization_from_text("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8") == "fp8"
    assert quantization_from_text("model-q4_k_m.gguf") == "gguf"
    assert quantization_from_text("TheBloke/Llama-2-7B-GPTQ") == "gptq"
    assert quantization_from_text("Qwen/Qwen3-8B") == ""
    assert quantization_from_text("hawq-model") == ""  # not a whole word


def test_parse_hf_model_plain() -> None:
    info = parse_hf_model(json.loads((FIXTURES / "hf-qwen3-8b.json").read_text()))
    assert info == HfInfo(
        parameter_count=8190735360,
        quantization="",
        pipeline_tag="text-generation",
        license="apache-2.0",
        gated=False,
        private=False,
    )


def test_parse_hf_model_quantized_gated_without_total() -> None:
    info = parse_hf_model(json.loads((FIXTURES / "hf-llama-awq-gated.json").read_text()))
    assert info.parameter_count == 8731353088 + 1640009728  # summed per dtype when "total" is absent
    assert info.quantization == "awq"  # from config.quantization_config
    assert info.gated is True  # "manual"
    assert info.license == "llama3.1"


def test_parse_hf_model_tolerates_odd_bodies() -> None:
    assert parse_hf_model({}) == HfInfo()
    assert parse_hf_model({"safetensors": "x", "tags": "y", "siblings": [1, None], "gated": "false"}) == HfInfo()


def test_enrich_sets_type_from_pipeline_tag() -> None:
    [entry] = merge([Sighting(name="e", provider="vllm", model_id="BAAI/bge-m3")]).values()
    out = enrich(entry, HfInfo(pipeline_tag="feature-extraction", private=True))
    assert out.model_type == "embedding"
    assert out.gated is True


def test_render_catalog_info_and_availability() -> None:
    from inferwatch.contracts.catalog import ModelCatalogSnapshot
    from inferwatch.services.aggregator.domains.catalog import render_catalog
    from inferwatch.services.aggregator.render import SeriesWriter

    entries = merge(
        [
            Sighting(
                name="qwen3-8b",
                provider="vllm",
                model_id="Qwen/Qwen3-8B",
                available=True,
                max_context=32768,
                seen_at=5.0,
            )
        ]
    )
    entry = enrich(entries["qwen3-8b"], parse_hf_model(json.loads((FIXTURES / "hf-qwen3-8b.json").read_text())))
    w = SeriesWriter()
    render_catalog(
        ModelCatalogSnapshot(source="cat", observed_at=1.0, collector="c", interval_s=30.0, entries=[entry]), w
    )
    text = "".join(w.freeze().values())
    assert (
        'inferwatch_model_info{model="qwen3-8b",model_id="Qwen/Qwen3-8B",type="llm",providers="vllm",'
        'quantization="",hf_url="https://huggingface.co/Qwen/Qwen3-8B",pipeline_tag="text-generation",'
        'license="apache-2.0",gated="false"} 1\n'
    ) in text
    assert 'inferwatch_model_available{model="qwen3-8b"} 1\n' in text
    assert 'inferwatch_model_parameters{model="qwen3-8b"} 8190735360\n' in text
    assert 'inferwatch_model_max_context_tokens{model="qwen3-8b"} 32768\n' in text


# --------------------------------------------------------------------------------------------------------------
# snapshots → sightings, source bookkeeping, cached HF records


def _vllm(status: str = "ready") -> VllmInstanceSnapshot:
    return VllmInstanceSnapshot(
        source="http://vllm-a:8000",
        observed_at=100.0,
        collector="t",
        interval_s=15.0,
        up=True,
        status=status,
        models=[
            VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B", max_model_len=32768),
            VllmModelCard(id="sql-lora", root="/adapters/sql", parent="qwen3-8b"),
        ],
    )


def test_sightings_from_vllm_cards() -> None:
    from inferwatch.services.model_catalog.core import sightings_from_vllm

    base, lora = sightings_from_vllm(_vllm())
    assert base == Sighting(
        name="qwen3-8b",
        provider="vllm",
        model_id="Qwen/Qwen3-8B",
        endpoint="http://vllm-a:8000",
        max_context=32768,
        available=True,
        seen_at=100.0,
    )
    assert (lora.name, lora.model_id, lora.max_context) == ("sql-lora", "/adapters/sql", 0)
    loading = sightings_from_vllm(_vllm(status="loading"))
    assert not any(s.available for s in loading)


def test_sightings_from_litellm_groups_deployments() -> None:
    from inferwatch.contracts.litellm import LitellmProxySnapshot, ModelRoute
    from inferwatch.services.model_catalog.core import sightings_from_litellm

    routes = [
        ModelRoute(model_group="chat", deployment_id="a", model_type="llm", status="outage", max_tokens=8192),
        ModelRoute(model_group="chat", deployment_id="b", model_type="llm", status="healthy", max_input_tokens=32768),
        ModelRoute(model_group="embed", deployment_id="c", model_type="embedding", status="outage"),
    ]
    snap = LitellmProxySnapshot(
        source="p",
        observed_at=5.0,
        collector="t",
        interval_s=30.0,
        up=True,
        base_url="http://litellm:4000",
        routes=routes,
    )
    chat, embed = sightings_from_litellm(snap)
    assert chat == Sighting(
        name="chat",
        provider="litellm",
        endpoint="http://litellm:4000",
        model_type="llm",
        max_context=32768,
        available=True,
        seen_at=5.0,
    )
    assert (embed.model_type, embed.available) == ("embedding", False)  # every deployment in outage


def test_sightings_from_docker_by_container() -> None:
    from inferwatch.contracts.docker import ContainerInfo, DockerHostSnapshot
    from inferwatch.services.model_catalog.core import sightings_from_docker

    snap = DockerHostSnapshot(
        source="h",
        observed_at=7.0,
        collector="t",
        interval_s=10.0,
        engine_version="27",
        containers=[
            ContainerInfo(
                id="c1",
                name="vllm",
                image="vllm/vllm-openai",
                state="running",
                health="healthy",
                models=["m-awq"],
                model_path="org/M-AWQ",
                quantization="AWQ",
                max_model_len=4096,
            ),
            ContainerInfo(id="c2", name="unnamed", image="vllm/vllm-openai", state="exited", model_path="org/N"),
            ContainerInfo(id="c3", name="redis", image="redis", state="running"),
        ],
    )
    out = sightings_from_docker(snap)
    assert sorted(out) == ["c1", "c2"]
    assert out["c1"] == [
        Sighting(
            name="m-awq",
            provider="docker",
            model_id="org/M-AWQ",
            max_context=4096,
            available=True,
            seen_at=7.0,
            quantization="awq",
        )
    ]
    assert (out["c2"][0].name, out["c2"][0].available) == ("org/N", False)  # vLLM's default served name


def test_down_source_keeps_models_and_silent_sources_fade_out() -> None:
    from inferwatch.services.model_catalog.core import SourceSightings, current_sightings, replace_source

    up = replace_source(
        None, [Sighting(name="m", provider="vllm", available=True)], up=True, received_at=100.0, interval_s=10.0
    )
    down = replace_source(up, [], up=False, received_at=110.0, interval_s=10.0)
    assert [(s.name, s.available) for s in down.sightings] == [("m", False)]
    assert replace_source(None, [], up=False, received_at=1.0, interval_s=10.0).sightings == ()

    sources = {"fresh": up, "old": SourceSightings(up.sightings, 0.0, 10.0)}
    live, forget = current_sightings(sources, 120.0, stale_intervals=3, retain_s=100.0)
    assert forget == ["old"]
    assert [s.available for s in live] == [True]
    live, _ = current_sightings({"fresh": up}, 131.0, stale_intervals=3, retain_s=100.0)  # 31 s > 3 × 10 s
    assert [s.available for s in live] == [False]


def test_publish_key_ignores_last_seen_only() -> None:
    from inferwatch.services.model_catalog.core import publish_key

    a = merge([Sighting(name="m", provider="vllm", seen_at=1.0, available=True)])
    b = merge([Sighting(name="m", provider="vllm", seen_at=2.0, available=True)], a)
    c = merge([Sighting(name="m", provider="vllm", seen_at=3.0, available=False)], a)
    assert publish_key(a) == publish_key(b)
    assert publish_key(a) != publish_key(c)


def test_hf_records_round_trip_and_statuses() -> None:
    from inferwatch.services.model_catalog.core import HfRecord, kv_key, record_for_status, retry_delay_s

    record = HfRecord("ok", 12.5, HfInfo(parameter_count=7, license="mit", gated=True))
    assert HfRecord.from_json(record.to_json()) == record
    assert HfRecord.from_json(b"{not json") is None
    assert HfRecord.from_json(b'{"status": "weird", "fetched_at": 1}') is None
    assert record_for_status(401, 1.0) == HfRecord("gated", 1.0, HfInfo(gated=True))
    assert record_for_status(403, 1.0) == HfRecord("gated", 1.0, HfInfo(gated=True))
    assert record_for_status(404, 1.0) == HfRecord("not_found", 1.0)
    assert record_for_status(429, 1.0) is None
    assert record_for_status(503, 1.0) is None
    key = kv_key("meta-llama/Llama-3.1-8B-Instruct")
    assert key.startswith("hf.meta-llama_Llama-3_1-8B-Instruct-")
    assert key.count(".") == 1
    assert kv_key("a/b.c") != kv_key("a/b_c")  # the hash keeps sanitised ids apart
    assert [retry_delay_s(n, 30.0, 100.0) for n in (1, 2, 3, 4)] == [30.0, 60.0, 100.0, 100.0]

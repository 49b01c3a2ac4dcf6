"""model-catalog core: merging sightings into one entry per model, HF metadata parsing (recorded API bodies)."""

from __future__ import annotations

import json
from pathlib import Path

from services.model_catalog.core import (
    HfInfo,
    Sighting,
    enrich,
    is_repo_id,
    merge,
    parse_hf_model,
    quantization_from_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "catalog"


def test_sightings_merge_into_one_entry_per_model() -> None:
    entries = merge([
        Sighting(name="qwen3-8b", provider="vllm", model_id="Qwen/Qwen3-8B", endpoint="http://a:8000",
                 max_context=32768, available=True, seen_at=100.0),
        Sighting(name="qwen3-8b", provider="litellm", model_id="hosted_vllm/qwen3-8b", endpoint="http://litellm:4000",
                 available=False, seen_at=120.0),
        Sighting(name="qwen3-8b", provider="docker", seen_at=90.0),
        Sighting(name="bge-m3", provider="litellm", model_type="embedding", seen_at=50.0),
    ])
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
    assert info == HfInfo(parameter_count=8190735360, quantization="", pipeline_tag="text-generation",
                          license="apache-2.0", gated=False, private=False)


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
    from contracts.catalog import ModelCatalogSnapshot
    from services.aggregator.domains.catalog import render_catalog
    from services.aggregator.render import SeriesWriter

    entries = merge([Sighting(name="qwen3-8b", provider="vllm", model_id="Qwen/Qwen3-8B", available=True,
                              max_context=32768, seen_at=5.0)])
    entry = enrich(entries["qwen3-8b"], parse_hf_model(json.loads((FIXTURES / "hf-qwen3-8b.json").read_text())))
    w = SeriesWriter()
    render_catalog(ModelCatalogSnapshot(source="cat", observed_at=1.0, collector="c", interval_s=30.0,
                                        entries=[entry]), w)
    text = "".join(w.freeze().values())
    assert ('inferwatch_model_info{model="qwen3-8b",model_id="Qwen/Qwen3-8B",type="llm",providers="vllm",'
            'quantization="",hf_url="https://huggingface.co/Qwen/Qwen3-8B",pipeline_tag="text-generation",'
            'license="apache-2.0",gated="false"} 1\n') in text
    assert 'inferwatch_model_available{model="qwen3-8b"} 1\n' in text
    assert 'inferwatch_model_parameters{model="qwen3-8b"} 8190735360\n' in text
    assert 'inferwatch_model_max_context_tokens{model="qwen3-8b"} 32768\n' in text

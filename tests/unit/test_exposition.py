"""Tests for shared.exposition: parity with prometheus_client, filters, OpenMetrics, errors, fuzzing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Exemplar

from inferwatch.shared import exposition
from inferwatch.shared.exposition import ExpositionError, MetricFamily, Sample, parse_exposition
from tests.support import FIXTURES

V1 = FIXTURES / "vllm-v1-metrics.txt"
V0 = FIXTURES / "vllm-v0-metrics.txt"
OM_SMALL = FIXTURES / "exposition" / "openmetrics-small.txt"

SampleKey = tuple[str, tuple[tuple[str, str], ...], Any]


def _norm(value: float) -> Any:
    return "NaN" if math.isnan(value) else float(value)


def _key(name: str, labels: dict[str, str], value: float) -> SampleKey:
    return (name, tuple(sorted(labels.items())), _norm(value))


def _our_samples(fams: dict[str, MetricFamily]) -> list[SampleKey]:
    return [_key(s.name, s.labels, s.value) for f in fams.values() for s in f.samples]


def _ref_samples(ref: Iterable[Any]) -> list[SampleKey]:
    return [_key(s.name, s.labels, s.value) for f in ref for s in f.samples]


def _sample(fams: dict[str, MetricFamily], name: str, **labels: str) -> float:
    hits = [s.value for f in fams.values() for s in f.samples if s.name == name and s.labels == labels]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


# ---------------------------------------------------------------------------------------------
# Parity with prometheus_client on the recorded vLLM bodies


# Every recorded /metrics body of the upstreams we parse: vLLM (V1, V0), LiteLLM (its HTTP answer, headers
# dropped) and every EPP generation. bench/bench_exposition.py times the same bodies.
PARITY_FIXTURES = {
    "vllm-v1": V1,
    "vllm-v0": V0,
    "litellm": FIXTURES / "litellm" / "metrics.http",
    "litellm-1.70": FIXTURES / "litellm" / "metrics-old-1.70.txt",
    **{f"epp-{p.stem}": p for p in sorted((FIXTURES / "epp").glob("*.txt"))},
}


def _body(path: Path) -> bytes:
    data = path.read_bytes()
    return data.split(b"\n\n", 1)[1] if path.suffix == ".http" else data  # status line and headers first


@pytest.mark.parametrize("path", PARITY_FIXTURES.values(), ids=PARITY_FIXTURES.keys())
def test_fixture_matches_prometheus_client(path: Path) -> None:
    data = _body(path)
    ref = list(text_string_to_metric_families(data.decode()))
    ours = parse_exposition(data)

    assert len(ours) == len(ref)
    assert [(f.name, f.type, len(f.samples)) for f in ref] == [(f.name, f.type, len(f.samples)) for f in ours.values()]
    assert {f.name: f.documentation for f in ref} == {f.name: f.help for f in ours.values()}
    assert list(ours) == [f.name for f in ours.values()]
    # every sample identical, in the same order
    assert _our_samples(ours) == _ref_samples(ref)
    assert set(_our_samples(ours)) == set(_ref_samples(ref))


def test_v1_spot_values() -> None:
    fams = parse_exposition(V1.read_bytes())
    assert len(fams) == 92
    assert sum(len(f.samples) for f in fams.values()) == 477
    kv = fams["vllm:kv_cache_usage_perc"]
    assert kv.type == "gauge"
    assert kv.help == "KV-cache usage. 1 means 100 percent usage."
    assert kv.samples == [Sample("vllm:kv_cache_usage_perc", {"engine": "0", "model_name": "qwen3-8b"}, 0.1837)]
    # counters are keyed without _total; samples keep their name
    prompt = fams["vllm:prompt_tokens"]
    assert prompt.type == "counter"
    assert prompt.samples[0].name == "vllm:prompt_tokens_total"
    assert prompt.samples[0].value == 9.807882e06
    # histogram: +Inf bucket == _count
    lat = fams["vllm:e2e_request_latency_seconds"]
    assert lat.type == "histogram"
    inf = _sample(fams, "vllm:e2e_request_latency_seconds_bucket", engine="0", le="+Inf", model_name="qwen3-8b")
    count = _sample(fams, "vllm:e2e_request_latency_seconds_count", engine="0", model_name="qwen3-8b")
    assert inf == count == 6000.0
    assert fams["vllm:estimated_flops_per_gpu_created"].type == "gauge"
    assert fams["http_request_size_bytes"].type == "summary"
    assert fams["process_virtual_memory_bytes"].samples[0].value == 4.3816087552e10


def test_v0_spot_values_and_empty_families() -> None:
    fams = parse_exposition(V0.read_bytes())
    assert _sample(fams, "vllm:gpu_cache_usage_perc", model_name="llama-3.1-8b-instruct") == 0.27421
    inf = _sample(fams, "vllm:e2e_request_latency_seconds_bucket", le="+Inf", model_name="llama-3.1-8b-instruct")
    assert inf == _sample(fams, "vllm:e2e_request_latency_seconds_count", model_name="llama-3.1-8b-instruct")
    # declared without children: present, typed, empty
    spec = fams["vllm:spec_decode_num_draft_tokens"]
    assert (spec.type, spec.samples) == ("counter", [])
    assert fams["vllm:spec_decode_efficiency"].samples == []


# ---------------------------------------------------------------------------------------------
# Filters

V1_WANTED = [
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens",  # counter, by family name
    "vllm:generation_tokens_total",  # counter, by sample/declared name
    "vllm:e2e_request_latency_seconds",
    "vllm:time_to_first_token_seconds",
    "http_request_size_bytes",
    "no_such_family",
]


def test_family_filter_keeps_exactly_the_asked_families() -> None:
    data = V1.read_bytes()
    everything = parse_exposition(data)
    fams = parse_exposition(data, families=V1_WANTED)
    assert list(fams) == [name for name in everything if name in V1_WANTED or name + "_total" in V1_WANTED]
    assert set(fams) == {
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "http_request_size_bytes",
    }
    for name, fam in fams.items():
        assert fam == everything[name]


def test_prefix_filter_and_union() -> None:
    data = V1.read_bytes()
    everything = parse_exposition(data)
    fams = parse_exposition(data, prefixes=["process_", "python_"])
    assert list(fams) == [n for n in everything if n.startswith(("process_", "python_"))]
    assert len(fams) == 10
    both = parse_exposition(data, families=["vllm:kv_cache_usage_perc"], prefixes=["process_"])
    assert list(both) == [n for n in everything if n.startswith("process_") or n == "vllm:kv_cache_usage_perc"]
    assert parse_exposition(data, families=[]) == {}
    # a bare string is one name / one prefix, not a set of characters
    assert list(parse_exposition(data, families="vllm:kv_cache_usage_perc")) == ["vllm:kv_cache_usage_perc"]
    assert list(parse_exposition(data, prefixes="process_")) == [n for n in everything if n.startswith("process_")]
    assert parse_exposition(data, families=(), prefixes=["nope"]) == {}


def test_filtered_out_lines_are_not_parsed() -> None:
    data = b"""# TYPE skipped gauge
skipped{a="unterminated} 1
skipped not-a-number
# TYPE kept gauge
kept{a="1"} 2
"""
    with pytest.raises(ExpositionError):
        parse_exposition(data)
    fams = parse_exposition(data, families={"kept"})
    assert list(fams) == ["kept"]
    assert fams["kept"].samples == [Sample("kept", {"a": "1"}, 2.0)]


def test_untyped_samples_and_filters() -> None:
    data = b"""foo_bucket{le="1"} 1
foo_count 1
# HELP bar some help
bar 3
stray_total 4
"""
    fams = parse_exposition(data)
    assert [(f.name, f.type, len(f.samples)) for f in fams.values()] == [
        ("foo_bucket", "untyped", 1),
        ("foo_count", "untyped", 1),
        ("bar", "untyped", 1),
        ("stray_total", "untyped", 1),
    ]
    assert fams["bar"].help == "some help"
    only = parse_exposition(data, families=["foo", "stray"])
    assert list(only) == ["foo", "stray"]
    assert [s.name for s in only["foo"].samples] == ["foo_bucket", "foo_count"]
    assert only["stray"].samples == [Sample("stray_total", {}, 4.0)]


# ---------------------------------------------------------------------------------------------
# OpenMetrics


def test_openmetrics_fixture() -> None:
    fams = parse_exposition(OM_SMALL.read_bytes())
    assert [(f.name, f.type, len(f.samples)) for f in fams.values()] == [
        ("vllm:prompt_tokens", "counter", 2),
        ("vllm:kv_cache_usage_perc", "gauge", 1),
        ("vllm:e2e_request_latency_seconds", "histogram", 6),
        ("build", "info", 1),
        ("feature", "stateset", 2),
        ("mystery", "unknown", 1),
    ]
    prompt = fams["vllm:prompt_tokens"].samples
    assert prompt[0] == Sample("vllm:prompt_tokens_total", {"engine": "0", "model_name": "qwen3-8b"}, 9.807882e06)
    assert prompt[1].name == "vllm:prompt_tokens_created"
    assert prompt[1].value == 1.795507271384e09
    assert fams["vllm:kv_cache_usage_perc"].samples[0].value == 0.1837  # timestamp dropped
    bucket10 = fams["vllm:e2e_request_latency_seconds"].samples[1]
    assert (bucket10.labels["le"], bucket10.value) == ("10.0", 40.0)  # exemplar dropped
    assert fams["build"].samples[0] == Sample("build_info", {"version": "0.33.0", "revision": 'a"b\\c'}, 1.0)
    filtered = parse_exposition(OM_SMALL.read_bytes(), families=["vllm:prompt_tokens_total", "build"])
    assert list(filtered) == ["vllm:prompt_tokens", "build"]
    assert len(filtered["vllm:prompt_tokens"].samples) == 2


# ---------------------------------------------------------------------------------------------
# Tolerance


def test_tolerated_syntax() -> None:
    data = (
        b"\n"
        b"# just a comment\n"
        b"#\n"
        b'# HELP m A \\\\ backslash and a\\nnewline; \\" stays\n'
        b"# TYPE m gauge\n"
        b'm{a="q\\"uote",b="back\\\\slash",c="new\\nline",d="unknown\\t escape",} 1\n'
        b'm { a = "spaced" , b="x" } 2 1700000000000\n'
        b'm{a="}{,=#"}\t3\r\n'
        b"\n"
        b'm{a="\xc3\xa9\xe2\x82\xac"} -Inf\n'
        b"m +Inf\n"
        b"m NaN\n"
        b'm{a="dup"} 1.06523385856e+011\n'
        b'm{a="dup"} 1.06523385856e+011\n'
        b"m{} 7\n"
        b"  m 8\n"
    )
    fams = parse_exposition(data)
    assert list(fams) == ["m"]
    m = fams["m"]
    assert m.help == 'A \\ backslash and a\nnewline; \\" stays'
    got = [(s.labels, s.value) for s in m.samples]
    assert got[0] == ({"a": 'q"uote', "b": "back\\slash", "c": "new\nline", "d": "unknown\\t escape"}, 1.0)
    assert got[1] == ({"a": "spaced", "b": "x"}, 2.0)
    assert got[2] == ({"a": "}{,=#"}, 3.0)
    assert got[3] == ({"a": "é€"}, -math.inf)
    assert got[4] == ({}, math.inf)
    assert got[5][0] == {}
    assert math.isnan(got[5][1])
    assert got[6] == got[7] == ({"a": "dup"}, 1.06523385856e11)  # duplicate series kept as they come
    assert got[8:] == [({}, 7.0), ({}, 8.0)]


def test_repeated_family_is_merged() -> None:
    data = b"# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\n# TYPE a gauge\na 3\n"
    fams = parse_exposition(data)
    assert list(fams) == ["a", "b"]
    assert [s.value for s in fams["a"].samples] == [1.0, 3.0]


def test_accepts_bytearray_and_memoryview() -> None:
    data = b"# TYPE a gauge\na 1\n"
    assert parse_exposition(bytearray(data)) == parse_exposition(data)
    assert parse_exposition(memoryview(data)) == parse_exposition(data)
    assert parse_exposition(b"") == {}


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("data", "line", "fragment"),
    [
        (b'# TYPE a gauge\na{x="open} 1\n', 2, "unterminated label value"),
        (b'# TYPE a gauge\na{x="open\\"} 1\n', 2, "unterminated label value"),
        (b'# TYPE a gauge\na{x="1"\n', 2, "expected ',' or '}'"),
        (b"# TYPE a gauge\n\na\n", 3, "missing value"),
        (b'# TYPE a gauge\na{x="1"}\n', 2, "missing value"),
        (b"# TYPE a gauge\na 1\na one\n", 3, "invalid value"),
        (b"# TYPE a gauge\na 1_000\n", 2, "invalid value"),
        (b'a{x="1"} 0x10\n', 1, "invalid value"),
        (b"a 1 2 3\n", 1, "unexpected text after value"),
        (b"a 1 ts\n", 1, "invalid timestamp"),
        (b"# TYPE a gauge\na 1\n\xff\xfe 2\n", 3, "invalid UTF-8"),
        (b'# TYPE a gauge\na{x="1",x="2"} 1\n', 2, "duplicate label name"),
        (b'# TYPE a gauge\na{x="1", x = "2"} 1\n', 2, "duplicate label name"),
        (b"# TYPE a gauge\na{x=1} 1\n", 2, "not quoted"),
        (b'# TYPE a gauge\na{1x="1"} 1\n', 2, "invalid label name"),
        (b"1a 1\n", 1, "invalid metric name"),
        (b"a-b 1\n", 1, "unexpected character"),
        (b"# TYPE a gauge\n# TYPE a counter\n", 2, "second TYPE"),
        (b"# TYPE a sometype\n", 1, "unknown metric type"),
        (b"# TYPE\n", 1, "TYPE line without a metric name"),
        (b"# TYPE 1a gauge\n", 1, "invalid metric name"),
        (b"a 1 # no-brace 1\n", 1, "malformed exemplar"),
    ],
)
def test_malformed_raises_with_line(data: bytes, line: int, fragment: str) -> None:
    with pytest.raises(ExpositionError) as info:
        parse_exposition(data)
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"line {line}: ")


def test_line_too_long() -> None:
    data = b'# TYPE a gauge\na 1\na{x="' + b"y" * 200 + b'"} 1\n'
    assert len(parse_exposition(data, max_line_bytes=300)["a"].samples) == 2
    with pytest.raises(ExpositionError, match="longer than 100 bytes") as info:
        parse_exposition(data, max_line_bytes=100)
    assert info.value.line == 3
    # counted in bytes, not characters
    wide = b'a{x="' + "é".encode() * 60 + b'"} 1\n'
    assert len(wide) > 100 > len(wide.decode())
    with pytest.raises(ExpositionError, match="longer than 100 bytes") as info:
        parse_exposition(b"# " + b"z" * 90 + b"\n" + wide, max_line_bytes=100)
    assert info.value.line == 2


def test_too_many_samples() -> None:
    body = b"# TYPE a gauge\n" + b"".join(b'a{i="%d"} 1\n' % i for i in range(50))
    assert len(parse_exposition(body, max_samples=50)["a"].samples) == 50
    with pytest.raises(ExpositionError, match="more than 49 samples") as info:
        parse_exposition(body, max_samples=49)
    assert info.value.line == 51
    # untyped (general path) samples are counted too
    untyped = b"".join(b"u%d 1\n" % i for i in range(10))
    with pytest.raises(ExpositionError, match="more than 3 samples") as info:
        parse_exposition(untyped, max_samples=3)
    assert info.value.line == 4
    # filtered-out samples do not count
    assert parse_exposition(body + b"# TYPE b gauge\nb 1\n", families=["b"], max_samples=1)["b"].samples


def test_what_is_remembered_across_parses_changes_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Header lines and label blocks remembered from earlier parses give what a first parse gives: warm, after
    a caller changed the labels it got, and with tables so small that they fill up and empty mid-body."""
    body = V1.read_bytes()
    exposition.forget_remembered()
    cold = parse_exposition(body)
    expected = _our_samples(cold)
    assert exposition._HEADERS  # something was remembered
    assert exposition._blocks[1]
    for fam in cold.values():
        for s in fam.samples:
            s.labels["le"] = "changed by a caller"
    assert _our_samples(parse_exposition(body)) == expected
    monkeypatch.setattr(exposition, "MAX_REMEMBERED", 8)
    exposition.forget_remembered()
    for _ in range(3):
        assert _our_samples(parse_exposition(body)) == expected
    assert len(exposition._HEADERS) <= 8


def test_too_many_labels() -> None:
    labels = ",".join(f'l{i}="{i}"' for i in range(5)).encode()
    data = b"# TYPE a gauge\na{" + labels + b"} 1\n"
    assert len(parse_exposition(data, max_label_pairs=5)["a"].samples[0].labels) == 5
    with pytest.raises(ExpositionError, match="more than 4 label pairs") as info:
        parse_exposition(data, max_label_pairs=4)
    assert info.value.line == 2


def test_str_input_is_rejected() -> None:
    with pytest.raises(ExpositionError, match="expected bytes"):
        parse_exposition("a 1\n")  # type: ignore[arg-type]


def test_error_type() -> None:
    err = ExpositionError("boom", 3)
    assert (err.line, err.reason, str(err)) == (3, "boom", "line 3: boom")
    assert ExpositionError("no line").line is None


# ---------------------------------------------------------------------------------------------
# Fuzzing

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_error(data: bytes) -> None:
    error: ExpositionError | None = None
    try:
        parse_exposition(data, max_samples=1000, max_line_bytes=4096, max_label_pairs=8)
    except ExpositionError as exc:
        error = exc
    if error is not None:
        assert error.line is None or error.line >= 1
        assert not error.reason.startswith("internal error"), error


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_exposition_error(data: bytes) -> None:
    _parse_or_error(data)


_FORMAT_ALPHABET = st.sampled_from([*'#{}=",\\ \t\n\rabc_:0123456789.+-eE', "Inf", "NaN", "# TYPE ", "# HELP "])


@FUZZ
@given(st.lists(_FORMAT_ALPHABET, max_size=120).map("".join))
def test_random_format_text_only_raises_exposition_error(text: str) -> None:
    _parse_or_error(text.encode())


_V1_TEXT = V1.read_bytes()


@FUZZ
@given(st.integers(0, len(_V1_TEXT)), st.integers(0, 40), st.binary(max_size=16))
def test_mutated_fixture_only_raises_exposition_error(pos: int, cut: int, insert: bytes) -> None:
    _parse_or_error(_V1_TEXT[:pos] + insert + _V1_TEXT[pos + cut :])


# Round trip: families rendered by prometheus_client, parsed back.

_NAMES = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
_LABEL_NAMES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,6}", fullmatch=True).filter(lambda n: n not in ("le", "quantile"))
_LABEL_VALUES = st.text(
    alphabet=st.one_of(st.sampled_from('"\\\n{}=,# \t\r'), st.characters(codec="utf-8")),
    max_size=12,
)
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e300, -1e-300, 1.06523385856e11, 5e-324, 1234567.0]),
)
_HELP = st.text(max_size=30).map(lambda s: s.strip(" \t\r"))
_EXEMPLAR_LABELS = st.dictionaries(_LABEL_NAMES, _LABEL_VALUES, min_size=1, max_size=2)
_LABELSETS = st.lists(st.dictionaries(_LABEL_NAMES, _LABEL_VALUES, max_size=4), min_size=1, max_size=4)


@st.composite
def _families(draw: st.DrawFn) -> list[Metric]:
    metrics: list[Metric] = []
    for i, prefix in enumerate(draw(st.lists(_NAMES, min_size=1, max_size=6))):
        name = f"{prefix}_m{i}"  # unique, and no family name is another's name plus a suffix
        typ = draw(st.sampled_from(["counter", "gauge", "unknown", "histogram", "summary", "info", "stateset"]))
        metric = Metric(name, draw(_HELP), typ)
        created = draw(st.booleans())
        for labels in draw(_LABELSETS):
            ts = draw(st.none() | st.floats(0, 2e9))

            def add(sample_name: str, extra: dict[str, str], value: float, **kw: Any) -> None:
                metric.add_sample(sample_name, {**labels, **extra}, value, ts, **kw)  # noqa: B023

            if typ == "counter":
                exemplar = draw(st.none() | st.tuples(_EXEMPLAR_LABELS, _VALUES).map(lambda t: Exemplar(*t)))
                add(f"{name}_total", {}, draw(_VALUES), exemplar=exemplar)
                if created:
                    add(f"{name}_created", {}, draw(_VALUES))
            elif typ in ("gauge", "unknown"):
                add(name, {}, draw(_VALUES))
            elif typ == "histogram":
                for le in ("0.5", "1.0", "+Inf"):
                    add(f"{name}_bucket", {"le": le}, draw(_VALUES))
                add(f"{name}_count", {}, draw(_VALUES))
                add(f"{name}_sum", {}, draw(_VALUES))
                if created:
                    add(f"{name}_created", {}, draw(_VALUES))
            elif typ == "summary":
                add(name, {"quantile": "0.5"}, draw(_VALUES))
                add(f"{name}_count", {}, draw(_VALUES))
                add(f"{name}_sum", {}, draw(_VALUES))
            elif typ == "info":
                add(f"{name}_info", {}, 1.0)
            else:  # stateset
                add(name, {name.replace(":", "_"): "on"}, draw(st.sampled_from([0.0, 1.0])))
        metrics.append(metric)
    return metrics


class _Collector:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


def _go_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _om_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _om_labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{_om_escape(v)}"' for k, v in sorted(labels.items()))


def _render_openmetrics(metrics: list[Metric]) -> bytes:
    """OpenMetrics 1.0 text. (prometheus_client 0.26's OpenMetrics writer turns ':' in sample
    names into '_' while keeping it in # TYPE, so it cannot render vLLM names faithfully.)"""
    out: list[str] = []
    for m in metrics:
        out.append(f"# HELP {m.name} {_om_escape(m.documentation)}\n# TYPE {m.name} {m.type}\n")
        for s in m.samples:
            labels = f"{{{_om_labels(s.labels)}}}" if s.labels else ""
            ts = f" {s.timestamp}" if s.timestamp is not None else ""
            ex = f" # {{{_om_labels(s.exemplar.labels)}}} {_go_float(s.exemplar.value)}" if s.exemplar else ""
            out.append(f"{s.name}{labels} {_go_float(s.value)}{ts}{ex}\n")
    out.append("# EOF\n")
    return "".join(out).encode()


def _render(metrics: list[Metric], openmetrics: bool) -> bytes:
    if openmetrics:
        return _render_openmetrics(metrics)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics))
    return generate_latest(registry)


def _expected(metrics: list[Metric], openmetrics: bool) -> dict[str, tuple[str, str, list[SampleKey]]]:
    """family name -> (type, help, samples) as parse_exposition should see the rendering."""
    out: dict[str, tuple[str, str, list[SampleKey]]] = {}
    for m in metrics:
        main: list[SampleKey] = []
        created: list[SampleKey] = []
        for s in m.samples:
            (created if s.name == f"{m.name}_created" and not openmetrics else main).append(
                _key(s.name, s.labels, s.value)
            )
        if openmetrics:
            out[m.name] = (m.type, m.documentation, main)
            continue
        text_type = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}.get(m.type, m.type)
        text_name = f"{m.name}_info" if m.type == "info" else m.name
        out[text_name] = (text_type, m.documentation, main)
        if created:
            out[f"{m.name}_created"] = ("gauge", m.documentation, created)
    return out


def _summary(fams: dict[str, MetricFamily]) -> dict[str, tuple[str, str, list[SampleKey]]]:
    return {name: (f.type, f.help, [_key(s.name, s.labels, s.value) for s in f.samples]) for name, f in fams.items()}


@FUZZ
@given(_families(), st.booleans())
def test_round_trip_through_prometheus_client(metrics: list[Metric], openmetrics: bool) -> None:
    data = _render(metrics, openmetrics)
    fams = parse_exposition(data)
    assert list(fams) == [f.name for f in fams.values()]
    assert _summary(fams) == _expected(metrics, openmetrics)
    # a filter on one family gives the same family
    first = next(iter(fams))
    assert _summary(parse_exposition(data, families=[first])) == {first: _summary(fams)[first]}


# The fast path splits each distinct label block once per body, histogram buckets through their block without
# `le`; the general path parses a line character by character. Both must agree on every block, canonical or not.
_BLOCK_PIECES = ['le="', 'a="', 'b="', '"', ",", "x", "le", "=", "\\", " ", "1", '",', ',le="', ',le="1"', "}", "{"]


def _samples_or_error(data: bytes, max_label_pairs: int) -> object:
    try:
        return [
            (s.name, s.labels, s.value)
            for f in parse_exposition(data, max_label_pairs=max_label_pairs).values()
            for s in f.samples
        ]
    except ExpositionError:
        return "error"


@FUZZ
@given(st.lists(st.lists(st.sampled_from(_BLOCK_PIECES), max_size=9).map("".join), min_size=1, max_size=4))
def test_fast_label_blocks_agree_with_the_general_path(blocks: list[str]) -> None:
    header = b"# TYPE h histogram\n"
    fast = header + b"".join(f"h_bucket{{{b}}} 1\n".encode() for b in blocks)
    general = header + b"".join(f"h_bucket {{{b}}} 1\n".encode() for b in blocks)  # a blank: never the fast path
    for max_label_pairs in (2, 64):
        assert _samples_or_error(fast, max_label_pairs) == _samples_or_error(general, max_label_pairs)


@pytest.mark.parametrize(
    ("block", "labels"),
    [
        ('a="x",le="1"', {"a": "x", "le": "1"}),
        ('le="1",a="x"', {"a": "x", "le": "1"}),
        ('a="x",le="1",b="y"', {"a": "x", "b": "y", "le": "1"}),
        ('a="q,le=",b=",z"', {"a": "q,le=", "b": ",z"}),  # ',le="' closing a value, not opening le
        ('le="1",', {"le": "1"}),
        ('a="x",,le="1"', None),
        (',le="1"', None),
        ('a="x",le="1",le="2"', None),
    ],
)
def test_bucket_blocks_in_any_order(block: str, labels: dict[str, str] | None) -> None:
    data = f"# TYPE h histogram\nh_bucket{{{block}}} 1\nh_bucket{{{block}}} 2\n".encode()
    if labels is None:
        with pytest.raises(ExpositionError):
            parse_exposition(data)
    else:
        assert [s.labels for s in parse_exposition(data)["h"].samples] == [labels, labels]

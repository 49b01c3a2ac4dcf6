"""Every pure JSON handler, fed arbitrary JSON-ish input: a result or our own error type, never anything else.

Upstreams (LiteLLM, Langfuse, vLLM, Docker, Hugging Face) are outside our control; a field of the wrong
type, a huge integer or a NaN must cost one row or one target, not the collector. Found here and by
``bench/fuzz/fuzz_json_handlers.py``: JSON integers beyond float range raised OverflowError in LiteLLM's and
Langfuse's number readers.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.services.docker_watcher.core import container_info
from inferwatch.services.langfuse_ingester.core import (
    BadRowError,
    number,
    parse_major,
    parse_observation,
    parse_score,
    parse_time,
    parse_trace,
    reduce_details,
)
from inferwatch.services.litellm_poller.core import (
    merge_group_info,
    parse_backlog,
    parse_health,
    parse_model_group_info,
    parse_model_info,
    parse_readiness,
)
from inferwatch.services.model_catalog.core import parse_hf_model
from inferwatch.services.vllm_scraper.core import parse_models

# Keys the handlers look for, so generated objects reach their inner paths, not only the first check.
KEYS = (
    "data",
    "id",
    "object",
    "root",
    "parent",
    "max_model_len",
    "model_name",
    "litellm_params",
    "model_info",
    "model",
    "api_base",
    "mode",
    "input_cost_per_token",
    "output_cost_per_token",
    "max_tokens",
    "max_input_tokens",
    "max_output_tokens",
    "litellm_provider",
    "custom_llm_provider",
    "model_group",
    "providers",
    "status",
    "db",
    "litellm_version",
    "success_callbacks",
    "in_flight_requests",
    "queued_requests",
    "rejected_requests",
    "healthy_endpoints",
    "unhealthy_endpoints",
    "model_id",
    "timestamp",
    "name",
    "userId",
    "sessionId",
    "tags",
    "metadata",
    "latency",
    "startTime",
    "endTime",
    "usageDetails",
    "usage",
    "input",
    "output",
    "total",
    "totalCost",
    "calculatedTotalCost",
    "costDetails",
    "providedModelName",
    "parentObservationId",
    "isRootObservation",
    "traceId",
    "type",
    "level",
    "traceName",
    "dataType",
    "value",
    "stringValue",
    "safetensors",
    "parameters",
    "config",
    "quantization_config",
    "quant_method",
    "siblings",
    "rfilename",
    "cardData",
    "license",
    "gated",
    "private",
    "pipeline_tag",
    "Config",
    "State",
    "Labels",
    "Image",
    "Env",
    "Cmd",
    "Entrypoint",
    "Args",
    "Path",
    "Id",
    "Name",
    "Status",
    "Health",
    "StartedAt",
    "RestartCount",
    "HostConfig",
    "DeviceRequests",
    "DeviceIDs",
    "NetworkSettings",
    "Ports",
    "Networks",
    "IPAddress",
    "HostPort",
    "HostIp",
    "8000/tcp",
    "NetworkMode",
    "input_tokens",
    "output_tokens",
    "inferwatch.port",
    "inferwatch.model",
)
TIMES = (
    "2026-08-20T14:00:00Z",
    "2026-08-20T14:00:00.123+02:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2026-02-30T00:00:00Z",
    "",
    "Z",
    "now",
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.integers(min_value=10**308, max_value=10**320)
    | st.integers(min_value=-(10**320), max_value=-(10**308))
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(TIMES)
    | st.sampled_from(
        (
            "NUMERIC",
            "BOOLEAN",
            "CATEGORICAL",
            "TEXT",
            "healthy",
            "true",
            "false",
            "--port",
            "vllm",
            "vllm/vllm-openai:v0.33.0",
            "serve",
            "NVIDIA_VISIBLE_DEVICES=0,1",
            "-1",
            "1e999",
        )
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=8)
    ),
    max_leaves=40,
)
OBJECTS = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=10)
LISTED = st.builds(lambda rows, extra: {"data": rows, **extra}, st.lists(JSON | OBJECTS, max_size=6), OBJECTS)


def _as_json_bytes(value: Any) -> bytes:
    try:
        return msgspec.json.encode(value)
    except (OverflowError, ValueError, TypeError):  # NaN keys and the like: not JSON, still bytes to feed
        return repr(value).encode()


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, OBJECTS, LISTED), st.one_of(JSON, OBJECTS, LISTED))
def test_litellm_handlers(raw: Any, other: Any) -> None:
    for parse in (parse_model_group_info, parse_readiness, parse_backlog, parse_health):
        with contextlib.suppress(ValueError):
            parse(raw)
    try:
        routes = parse_model_info(raw)
    except ValueError:
        return
    try:
        groups = parse_model_group_info(other)
    except ValueError:
        groups = {}
    merge_group_info(routes, groups)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, OBJECTS))
def test_langfuse_row_parsers(item: Any) -> None:
    for parse in (parse_trace, parse_observation, parse_score):
        with contextlib.suppress(BadRowError):
            parse(item)
    reduce_details(item)
    for value in (item, *(item.values() if isinstance(item, dict) else ())):
        number(value)
        parse_time(value)
    if isinstance(item, str):
        parse_major(item)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, OBJECTS, LISTED))
def test_vllm_models_parser(raw: Any) -> None:
    try:
        cards = parse_models(_as_json_bytes(raw))
    except ValueError:
        return
    assert all(isinstance(c.id, str) and isinstance(c.max_model_len, int) for c in cards)


@settings(max_examples=300, deadline=None)
@given(OBJECTS, st.sampled_from(("auto", "published", "container")))
def test_docker_inspect_and_hf_model(doc: dict[str, Any], mode: str) -> None:
    parse_hf_model(doc)
    container_info(doc, address_mode=mode)


def test_huge_integers_are_read_as_absent() -> None:
    # the regression fuzzing found: msgspec decodes big JSON integers exactly, float() of them overflows
    raw = msgspec.json.decode(
        b'{"data":[{"model_name":"g","model_info":{"input_cost_per_token":1'
        + b"0" * 400
        + b',"max_tokens":-1'
        + b"0" * 400
        + b"}}]}"
    )
    [route] = parse_model_info(raw)
    assert route.input_cost_per_token == 0.0
    assert route.max_tokens == 0
    assert number(10**400) is None
    assert number(-(10**400)) is None
    assert number(7) == 7.0
    assert parse_backlog({"queued_requests": 10**400, "in_flight_requests": 2}) == {"in_flight_requests": 2.0}

"""Every event type round-trips through both codecs; subjects are safe NATS tokens."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch import contracts
from inferwatch.cli import asyncapi, json_schemas
from inferwatch.contracts import (
    EVENT_TYPES,
    HEARTBEAT_V1_FILTER,
    DecodeError,
    decode,
    encode,
    heartbeat_filter,
    sanitize_token,
    subject_for,
    type_filter,
)
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.base import Histogram
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
text = st.text(max_size=20)


def struct_strategy(cls: type[msgspec.Struct]) -> st.SearchStrategy[msgspec.Struct]:
    """Every field generated from its resolved type (signature defaults are msgspec factories)."""
    return st.builds(cls, **{f.name: st.from_type(f.type) for f in msgspec.structs.fields(cls)})


# Floats are kept finite so equality holds; nested Structs are built field by field.
st.register_type_strategy(float, finite)
st.register_type_strategy(str, text)
st.register_type_strategy(int, st.integers(-(2**63), 2**63 - 1))
for _module in ("base", "vllm", "docker", "discovery", "litellm", "langfuse", "gpu", "epp", "catalog", "upstream"):
    for _obj in vars(__import__(f"inferwatch.contracts.{_module}", fromlist=["_"])).values():
        if (
            isinstance(_obj, type)
            and issubclass(_obj, msgspec.Struct)
            and _obj.__module__.startswith("inferwatch.contracts")
        ):
            st.register_type_strategy(_obj, st.deferred(lambda c=_obj: struct_strategy(c)))


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_every_event_round_trips_msgpack_and_json(event_type: type) -> None:
    # the snapshot types are large (VllmInstanceSnapshot: dozens of nested fields): generating them is slow on a
    # loaded machine, which is no failure of the round trip
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(struct_strategy(event_type))
    def check(event: contracts.Event) -> None:
        for encoding in ("msgpack", "json"):
            data = encode(event, encoding)  # type: ignore[arg-type]
            assert decode(data) == event
        assert subject_for(event).startswith(f"inferwatch.v{event_type.SUBJECT_VERSION}.")

    check()


def test_events_are_frozen_and_tagged() -> None:
    for event_type in EVENT_TYPES:
        config = event_type.__struct_config__
        assert config.frozen, event_type
        assert isinstance(config.tag, str), event_type
        assert config.tag.count(".") == 1, event_type
    tags = [t.__struct_config__.tag for t in EVENT_TYPES]
    assert len(tags) == len(set(tags))


def test_json_wire_is_self_describing() -> None:
    snap = VllmInstanceSnapshot(
        source="http://10.0.0.5:8000",
        observed_at=1.5,
        collector="c",
        interval_s=15,
        up=True,
        engines=[
            VllmEngineStats(
                model_name="m",
                time_to_first_token_seconds=Histogram(buckets=[(0.1, 1.0), (1.0, 2.0)], sum=0.3, count=2.0),
            )
        ],
    )
    doc = json.loads(encode(snap, "json"))
    assert doc["type"] == "vllm.instance"
    assert doc["source"] == "http://10.0.0.5:8000"
    assert decode(encode(snap, "json")) == decode(encode(snap)) == snap


def test_subjects() -> None:
    snap = VllmInstanceSnapshot(source="http://10.0.0.5:8000", observed_at=1, collector="c", interval_s=15, up=True)
    subject = subject_for(snap)
    assert subject.startswith("inferwatch.v2.vllm.instance.http___10_0_0_5_8000-")
    assert subject.count(".") == 4
    alert = Alert(source="fp1", observed_at=1, collector="c", name="VllmTargetDown", state="firing")
    assert subject_for(alert) == "inferwatch.v1.alert.VllmTargetDown.fp1"


@given(st.text(max_size=300))
def test_sanitized_tokens_are_single_safe_tokens(value: str) -> None:
    token = sanitize_token(value)
    assert token
    assert len(token) <= 96
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in token)


@given(st.text(max_size=40), st.text(max_size=40))
def test_sanitized_tokens_keep_distinct_keys_apart(a: str, b: str) -> None:
    if a != b:
        assert sanitize_token(a) != sanitize_token(b) or sanitize_token(a) == "_"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01",
        b"{not json",
        b'{"type":"nope.nope","source":"x"}',
        msgspec.msgpack.encode({"type": "vllm.instance"}),
        b'{"type":"heartbeat.service","source":1}',
    ],
)
def test_bad_messages_raise_decode_error_only(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)


def test_schema_documents_cover_every_event() -> None:
    schema = json_schemas()
    names = {t.__name__ for t in EVENT_TYPES}
    assert names <= set(schema["$defs"])
    doc = asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == names
    assert doc["channels"]["VllmInstanceSnapshot"]["address"] == "inferwatch.v2.vllm.instance.{source}"
    heartbeat = doc["channels"]["Heartbeat"]
    assert heartbeat["address"] == "inferwatch.v2.heartbeat.{service}.{source}"
    assert set(heartbeat["parameters"]) == {"service", "source"}
    assert doc["channels"]["Alert"]["address"] == "inferwatch.v1.alert.{name}.{source}"
    json.dumps(doc)  # serialisable


def _nats_match(pattern: str, subject: str) -> bool:
    """NATS wildcard semantics: ``*`` one token, ``>`` one or more trailing tokens."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def _heartbeat(service: str) -> Heartbeat:
    from inferwatch.shared.service import instance_id

    inst = instance_id(service)
    return Heartbeat(
        source=inst, observed_at=0, collector=inst, interval_s=5, service=service, version="0", started_at=0, ready=True
    )


def test_a_services_peers_subscribe_to_its_heartbeats_and_no_others() -> None:
    own = heartbeat_filter("vllm-scraper")
    assert own == "inferwatch.v2.heartbeat.vllm-scraper.*"
    assert _nats_match(own, subject_for(_heartbeat("vllm-scraper")))
    assert not _nats_match(own, subject_for(_heartbeat("vllm-scraper-canary")))
    assert not _nats_match(own, subject_for(_heartbeat("epp-scraper")))


def test_v1_heartbeats_are_still_read() -> None:
    beat = _heartbeat("vllm-scraper")
    v1_subject = "inferwatch.v1.heartbeat.service." + sanitize_token(beat.source)  # as the previous release sent it
    assert _nats_match(HEARTBEAT_V1_FILTER, v1_subject)
    assert not _nats_match(HEARTBEAT_V1_FILTER, subject_for(beat))
    assert decode(encode(beat)) == beat  # the payload is the same in both versions


def test_type_filter_picks_one_kind_only_where_the_subject_carries_one() -> None:
    assert type_filter(Alert, "VllmTargetDown") == "inferwatch.v1.alert.VllmTargetDown.*"
    assert type_filter(Alert) == "inferwatch.v1.alert.*.*"
    assert type_filter(VllmInstanceSnapshot) == "inferwatch.v2.vllm.instance.*"
    with pytest.raises(TypeError):
        type_filter(VllmInstanceSnapshot, "instance")

"""Every event type round-trips through both codecs; subjects are safe NATS tokens."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch import contracts
from inferwatch.cli import asyncapi, json_schemas
from inferwatch.contracts import EVENT_TYPES, DecodeError, decode, encode, sanitize_token, subject_for
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.base import Histogram
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
    @settings(max_examples=15, deadline=None)
    @given(struct_strategy(event_type))
    def check(event: contracts.Event) -> None:
        for encoding in ("msgpack", "json"):
            data = encode(event, encoding)  # type: ignore[arg-type]
            assert decode(data) == event
        assert subject_for(event).startswith("inferwatch.v1.")

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
                model_name="m", ttft_seconds=Histogram(buckets=[(0.1, 1.0), (1.0, 2.0)], sum=0.3, count=2.0)
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
    assert subject.startswith("inferwatch.v1.vllm.instance.http___10_0_0_5_8000-")
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
    assert doc["channels"]["VllmInstanceSnapshot"]["address"] == "inferwatch.v1.vllm.instance.{source}"
    json.dumps(doc)  # serialisable


def test_a_services_heartbeat_subjects_share_the_prefix_its_peers_filter_on() -> None:
    from inferwatch.contracts.heartbeat import Heartbeat
    from inferwatch.shared.service import heartbeat_subject_prefix, instance_id

    def subject(service: str) -> str:
        inst = instance_id(service)
        return subject_for(
            Heartbeat(
                source=inst,
                observed_at=0,
                collector=inst,
                interval_s=5,
                service=service,
                version="0",
                started_at=0,
                ready=True,
            )
        )

    assert subject("vllm-scraper").startswith(heartbeat_subject_prefix("vllm-scraper"))
    assert not subject("vllm-scraper-canary").startswith(heartbeat_subject_prefix("vllm-scraper"))
    assert not subject("epp-scraper").startswith(heartbeat_subject_prefix("vllm-scraper"))

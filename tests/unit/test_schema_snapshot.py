"""The recorded event schemas (contracts/schema/events.json) and the rules that keep a subject's promise.

A breaking change to an event fails here unless its ``SUBJECT_VERSION`` was raised; any change at all
fails until the record is regenerated (scripts/schema_snapshot.py).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import pytest

from scripts.schema_snapshot import (
    SNAPSHOT,
    WRITE_COMMAND,
    breaking_changes,
    current_schemas,
    load_record,
    render,
    unversioned_breaks,
    updated_record,
)


def test_no_event_changed_incompatibly_without_a_new_subject_version() -> None:
    breaks = unversioned_breaks(load_record(), current_schemas())
    assert not breaks, (
        "breaking change to an event under the same subject version:\n  "
        + "\n  ".join(breaks)
        + f"\nraise that event's SUBJECT_VERSION (its subjects move to the next version), then run {WRITE_COMMAND}"
    )


def test_the_record_is_current() -> None:
    expected = render(updated_record(load_record(), current_schemas()))
    assert SNAPSHOT.read_text() == expected, f"{SNAPSHOT.name} is stale: run {WRITE_COMMAND} and commit it"


def test_every_event_and_the_v1_heartbeat_are_recorded() -> None:
    record = load_record()
    for tag, (version, _) in current_schemas().items():
        assert version in record[tag], tag
    assert set(record["heartbeat.service"]) == {"v1", "v2"}  # the payload the previous release published


# ---- the compatibility rules on small synthetic events ----------------------------------------------------


def schema_of(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return msgspec.json.schema(struct)


class Part(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    size: int = 0


class Base(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: int
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class FieldRemoved(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: int
    ratio: float | None = None
    parts: list[Part] = []


class FieldRenamed(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    total: int
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class OptionalFieldAdded(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: int
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []
    extra: dict[str, float] = {}


class RequiredFieldAdded(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: int
    host: str
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class LiteralWidened(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off", "unknown"]
    count: int
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class LiteralNarrowed(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on"]
    count: int
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class LiteralOpened(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: str
    count: int
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class StringClosed(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: int
    note: Literal["", "a"] = ""
    ratio: float | None = None
    parts: list[Part] = []


class TypeChanged(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: str
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class IntWidenedToFloat(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: float
    note: str = ""
    ratio: float | None = None
    parts: list[Part] = []


class NoneNoLongerAllowed(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: int
    note: str = ""
    ratio: float = 0.0
    parts: list[Part] = []


class PartWithoutSize(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class NestedChanged(msgspec.Struct, frozen=True, kw_only=True, tag="x.y"):
    state: Literal["on", "off"]
    count: int
    note: str = ""
    ratio: float | None = None
    parts: list[PartWithoutSize] = []


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (FieldRemoved, ["$.note: field removed or renamed"]),
        (FieldRenamed, ["$.count: field removed or renamed", "$.total: new required field"]),
        (RequiredFieldAdded, ["$.host: new required field"]),
        (LiteralNarrowed, ["$.state: values removed ['off']"]),
        (StringClosed, ["$.note: narrowed from string to the values ['', 'a']"]),
        (TypeChanged, ["$.count: type changed from integer to string"]),
        (NoneNoLongerAllowed, ["$.ratio: type changed from null to number"]),
        (NestedChanged, ["$.parts[].size: field removed or renamed"]),
    ],
)
def test_breaking_changes_are_found(changed: type[msgspec.Struct], expected: list[str]) -> None:
    assert breaking_changes(schema_of(Base), schema_of(changed)) == expected


@pytest.mark.parametrize("changed", [Base, OptionalFieldAdded, LiteralWidened, LiteralOpened, IntWidenedToFloat])
def test_compatible_changes_pass(changed: type[msgspec.Struct]) -> None:
    assert breaking_changes(schema_of(Base), schema_of(changed)) == []


def test_a_narrowed_number_is_breaking_the_other_way_round() -> None:
    assert breaking_changes(schema_of(IntWidenedToFloat), schema_of(Base)) == [
        "$.count: type changed from number to integer"
    ]


def test_a_breaking_change_is_allowed_under_a_new_version_recorded_beside_the_old() -> None:
    record = {"x.y": {"v1": schema_of(Base)}}
    assert unversioned_breaks(record, {"x.y": ("v1", schema_of(FieldRemoved))}) == [
        "x.y v1: $.note: field removed or renamed"
    ]
    bumped = {"x.y": ("v2", schema_of(FieldRemoved))}
    assert unversioned_breaks(record, bumped) == []
    rewritten = updated_record(record, bumped)
    assert rewritten == {"x.y": {"v1": schema_of(Base), "v2": schema_of(FieldRemoved)}}
    assert unversioned_breaks(rewritten, bumped) == []
    assert unversioned_breaks(rewritten, {"x.y": ("v1", schema_of(Base))}) == [
        "x.y: SUBJECT_VERSION lowered to 1 (v2 is recorded)"
    ]


def test_a_dropped_event_type_is_breaking() -> None:
    assert unversioned_breaks({"x.y": {"v1": schema_of(Base)}}, {}) == ["x.y: event type removed"]

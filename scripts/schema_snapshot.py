"""The recorded JSON Schema of every event, per event type and subject version, and its compatibility rules.

``contracts/schema/events.json`` maps each event tag to ``{"v<N>": schema}``: the wire shape (titles and
descriptions left out) of every subject version the event has had. A version's schema is recorded when
it first appears and kept beside the newer ones afterwards, so what an older subject carried stays on
record; ``--write`` only ever (re)writes the entry of each type's current ``SUBJECT_VERSION``, and
refuses to record a breaking change under a version already recorded (raise the version instead).
``--allow-breaking`` overrides that for the one honest case: the record promised more than any producer
ever sent, e.g. a field always filled from a closed vocabulary is typed as that ``Literal``.

``tests/unit/test_schema_snapshot.py`` compares the live contracts with the record: a breaking change to an
event (`breaking_changes`) fails unless its ``SUBJECT_VERSION`` was raised, and any other difference
fails as a stale record until it is regenerated.

Run: .venv/bin/python -m scripts.schema_snapshot [--write [--allow-breaking]]   (--write updates the record)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from inferwatch.contracts.registry import EVENT_TYPES
from inferwatch.contracts.subjects import version_token

SNAPSHOT = Path(__file__).resolve().parents[1] / "contracts" / "schema" / "events.json"
WRITE_COMMAND = ".venv/bin/python -m scripts.schema_snapshot --write"
_DOCUMENTATION = frozenset({"title", "description"})

Schema = dict[str, Any]
Record = dict[str, dict[str, Schema]]


def _wire_shape(node: Any) -> Any:
    """``node`` without documentation keys: the record tracks what travels, not how it is described."""
    if isinstance(node, dict):
        return {k: _wire_shape(v) for k, v in node.items() if k not in _DOCUMENTATION}
    if isinstance(node, list):
        return [_wire_shape(v) for v in node]
    return node


def current_schemas() -> dict[str, tuple[str, Schema]]:
    """Every event type's ``(version token, schema)`` as the code defines it now, by tag."""
    out: dict[str, tuple[str, Schema]] = {}
    for event_type in EVENT_TYPES:
        tag = event_type.__struct_config__.tag
        assert isinstance(tag, str)
        out[tag] = (version_token(event_type), _wire_shape(msgspec.json.schema(event_type)))
    return out


def load_record(path: Path = SNAPSHOT) -> Record:
    """The recorded schemas (empty when nothing is recorded yet)."""
    if not path.exists():
        return {}
    record: Record = json.loads(path.read_text())
    return record


def updated_record(record: Mapping[str, Mapping[str, Schema]], current: Mapping[str, tuple[str, Schema]]) -> Record:
    """``record`` with each type's current version (re)written; older versions are kept as they were."""
    out: Record = {tag: dict(versions) for tag, versions in record.items()}
    for tag, (version, schema) in current.items():
        out.setdefault(tag, {})[version] = schema
    return {tag: dict(sorted(out[tag].items(), key=lambda kv: int(kv[0][1:]))) for tag in sorted(out)}


def render(record: Record) -> str:
    """The record file's text (stable: sorted keys, two-space indent, final newline)."""
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


# ---- compatibility ---------------------------------------------------------------------------------


def unversioned_breaks(
    record: Mapping[str, Mapping[str, Schema]], current: Mapping[str, tuple[str, Schema]]
) -> list[str]:
    """Breaking changes made without raising ``SUBJECT_VERSION``, one message each (empty: none).

    A type's current schema is held against the record of the same version; a version not recorded yet is
    a new subject and may look like anything. Also breaking: an event type dropped, a version lowered.
    """
    out = [f"{tag}: event type removed" for tag in sorted(set(record) - set(current))]
    for tag, (version, schema) in sorted(current.items()):
        recorded = record.get(tag, {})
        newest = max((int(v[1:]) for v in recorded), default=0)
        if int(version[1:]) < newest:
            out.append(f"{tag}: SUBJECT_VERSION lowered to {version[1:]} (v{newest} is recorded)")
        elif version in recorded:
            out.extend(f"{tag} {version}: {problem}" for problem in breaking_changes(recorded[version], schema))
    return out


class _Side:
    """One schema document, for resolving its ``$ref``s."""

    def __init__(self, schema: Schema) -> None:
        self.defs: dict[str, Schema] = schema.get("$defs", {})

    def resolve(self, node: Schema) -> Schema:
        while "$ref" in node:
            node = self.defs[node["$ref"].rsplit("/", 1)[-1]]
        return node


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What a reader of ``new`` would get wrong about ``old`` payloads, or an ``old`` reader about ``new``.

    Breaking: a field removed or renamed, a new required field (or an optional one made required), a
    type changed or narrowed (a ``Literal`` value removed, ``number`` to ``integer``, a fixed ``Literal``
    where any string was allowed), a changed tuple shape. Compatible: a new optional field, a widened
    type (a ``Literal`` value added, ``integer`` to ``number``, a ``Literal`` opened to any string,
    ``None`` newly allowed). Documentation and defaults are not compared.
    """
    problems: list[str] = []
    _compare(_Side(old), old, _Side(new), new, "$", problems)
    return problems


def _compare(old_side: _Side, old: Schema, new_side: _Side, new: Schema, path: str, problems: list[str]) -> None:
    old, new = old_side.resolve(old), new_side.resolve(new)
    if "anyOf" in old:  # every kind of value the old schema allowed must still be accepted
        for branch in old["anyOf"]:
            _compare(old_side, branch, new_side, new, path, problems)
        return
    if "anyOf" in new:
        closest: list[str] | None = None  # the branch that comes nearest explains the break best
        for branch in new["anyOf"]:
            found: list[str] = []
            _compare(old_side, old, new_side, branch, path, found)
            if not found:
                return
            if closest is None or len(found) < len(closest):
                closest = found
        problems.extend(closest or [f"{path}: type changed"])
        return
    if "enum" in old:
        _compare_enum(old["enum"], new, path, problems)
        return
    if "enum" in new:
        problems.append(f"{path}: narrowed from {_type_name(old)} to the values {new['enum']}")
        return
    old_type, new_type = old.get("type"), new.get("type")
    if old_type != new_type and not (old_type == "integer" and new_type == "number"):
        problems.append(f"{path}: type changed from {_type_name(old)} to {_type_name(new)}")
        return
    if old_type == "object":
        _compare_object(old_side, old, new_side, new, path, problems)
    elif old_type == "array":
        _compare_array(old_side, old, new_side, new, path, problems)


def _compare_enum(old_values: list[Any], new: Schema, path: str, problems: list[str]) -> None:
    if "enum" in new:
        removed = [v for v in old_values if v not in new["enum"]]
        if removed:
            problems.append(f"{path}: values removed {removed}")
        return
    kinds: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    accepted = kinds.get(str(new.get("type")))
    if accepted is None or not all(isinstance(v, accepted) for v in old_values):
        problems.append(f"{path}: type changed from the values {old_values} to {_type_name(new)}")


def _compare_object(old_side: _Side, old: Schema, new_side: _Side, new: Schema, path: str, problems: list[str]) -> None:
    if ("properties" in old) != ("properties" in new):
        problems.append(f"{path}: changed between a struct and a map")
        return
    if "properties" not in old:  # a map: its values
        _compare(
            old_side,
            old.get("additionalProperties", {}),
            new_side,
            new.get("additionalProperties", {}),
            f"{path}.*",
            problems,
        )
        return
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name, field_schema in old["properties"].items():
        if name not in new["properties"]:
            problems.append(f"{path}.{name}: field removed or renamed")
            continue
        if name in new_required and name not in old_required:
            problems.append(f"{path}.{name}: optional field became required")
        _compare(old_side, field_schema, new_side, new["properties"][name], f"{path}.{name}", problems)
    for name in sorted(new_required - set(old["properties"])):
        problems.append(f"{path}.{name}: new required field")


def _compare_array(old_side: _Side, old: Schema, new_side: _Side, new: Schema, path: str, problems: list[str]) -> None:
    old_items, new_items = old.get("prefixItems"), new.get("prefixItems")
    if old_items is not None or new_items is not None:  # a tuple or an array-like struct: position matters
        if old_items is None or new_items is None or len(old_items) != len(new_items):
            problems.append(f"{path}: tuple shape changed")
            return
        if (old.get("minItems"), old.get("maxItems")) != (new.get("minItems"), new.get("maxItems")):
            problems.append(f"{path}: tuple length changed")
        for i, (o, n) in enumerate(zip(old_items, new_items, strict=True)):
            _compare(old_side, o, new_side, n, f"{path}[{i}]", problems)
        return
    _compare(old_side, old.get("items", {}), new_side, new.get("items", {}), f"{path}[]", problems)


def _type_name(node: Schema) -> str:
    if "enum" in node:
        return f"the values {node['enum']}"
    return str(node.get("type", "any"))


def main(argv: list[str] | None = None) -> int:
    """Print the updated record, or write it (``--write``); 1 when a breaking change was refused."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help=f"update {SNAPSHOT.name} in place")
    parser.add_argument(
        "--allow-breaking", action="store_true", help="record breaking changes under their current version too"
    )
    args = parser.parse_args(argv)
    record, current = load_record(), current_schemas()
    breaks = unversioned_breaks(record, current)
    if breaks and args.write and not args.allow_breaking:
        sys.stderr.write("not written: breaking changes under a recorded version (raise SUBJECT_VERSION):\n")
        sys.stderr.write("".join(f"  {b}\n" for b in breaks))
        return 1
    text = render(updated_record(record, current))
    if args.write:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Metric fields: a contract field that *is* the declaration of one exported metric.

A collector reads an upstream family into a field; the aggregator exports the field as
``inferwatch_<domain>_<field>`` (counters without the ``_total`` the field keeps). Type, help, unit,
upstream family names and label all sit on the field::

    kv_cache_usage_ratio: Annotated[
        float | None, metric("gauge", "KV-cache usage, 0..1.", "kv_cache_usage_perc", "gpu_cache_usage_perc")
    ] = None

so the collector's mapping, the aggregator's families, the README table and the JSON Schema all derive
from that one line (`metric_fields` reads them back, once, at import of whoever needs them).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

MetricType = Literal["gauge", "counter", "histogram"]

_KEY = "x-metric"  # the key of the declaration in Meta.extra and in the JSON Schema


@dataclass(frozen=True, slots=True)
class MetricField:
    """One metric field as declared on its Struct.

    Attributes:
        field: the Struct field; the exported name is ``<prefix><field>`` (a counter drops ``_total``).
        type: ``gauge``, ``counter`` or ``histogram``.
        help: HELP text.
        unit: ``seconds``, ``tokens``, ``ratio``, ``requests``… (``""`` when unitless).
        sources: upstream family names the value is read from, newest first (counters without ``_total``).
        label: for a ``dict[str, float]`` field, the label its keys become; ``""`` for a plain value.
    """

    field: str
    type: MetricType
    help: str
    unit: str
    sources: tuple[str, ...]
    label: str

    @property
    def family_name(self) -> str:
        """The field as a family name: counters without ``_total`` (their samples get it back)."""
        return self.field.removesuffix("_total") if self.type == "counter" else self.field


def metric(type: MetricType, help: str, *sources: str, unit: str = "", label: str = "") -> msgspec.Meta:
    """The ``Annotated`` metadata that declares a field as an exported metric.

    Args:
        type: ``gauge``, ``counter`` or ``histogram``.
        help: HELP text (also the field's JSON Schema description).
        *sources: upstream family names, newest first.
        unit: the unit of the value.
        label: for a ``dict[str, float]`` field, the label its keys become.
    """
    declaration = {"type": type, "unit": unit, "sources": list(sources), "label": label}
    return msgspec.Meta(description=help, extra={_KEY: declaration}, extra_json_schema={_KEY: declaration})


def metric_fields(struct_type: type[msgspec.Struct]) -> tuple[MetricField, ...]:
    """The metric fields of ``struct_type``, in declaration order (fields without `metric` are skipped)."""
    hints = typing.get_type_hints(struct_type, include_extras=True)
    found: list[MetricField] = []
    for field in msgspec.structs.fields(struct_type):
        for meta in getattr(hints[field.name], "__metadata__", ()):
            declaration: dict[str, Any] | None = (
                (meta.extra or {}).get(_KEY) if isinstance(meta, msgspec.Meta) else None
            )
            if declaration is not None:
                found.append(
                    MetricField(
                        field=field.name,
                        type=declaration["type"],
                        help=meta.description or "",
                        unit=declaration["unit"],
                        sources=tuple(declaration["sources"]),
                        label=declaration["label"],
                    )
                )
    return tuple(found)

"""A tiny Prometheus registry that renders through a cached template, as prometheus_client writes numbers."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from itertools import accumulate
from typing import Any

_NAN = float("nan")
_INF = float("inf")


def fmt_legacy(d: float) -> str:
    """prometheus_client ≤0.21 spelling: like ``floatToGoString`` but exponents ≥10 print as ``e+010``."""
    d = float(d)
    if d != d:
        return "NaN"
    if d in (_INF, -_INF):
        return "+Inf" if d > 0 else "-Inf"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return s


def _esc_label(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _esc_help(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n")


def _pct(s: str) -> str:
    """Escape constant template text for ``str %``."""
    return s.replace("%", "%%")


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: tuple[str, str] | None = None) -> str:
    pairs = list(zip(names, values, strict=True))
    if extra is not None:
        pairs.append(extra)
    pairs.sort()
    return ",".join(f'{k}="{_esc_label(v)}"' for k, v in pairs)


# --------------------------------------------------------------------------------------------------------------
# A tiny registry that renders through a cached template


class Num:
    """A counter or gauge value."""

    __slots__ = ("v",)

    def __init__(self, v: float = 0.0) -> None:
        self.v = v

    def emit(self, out: list[float]) -> None:
        out.append(self.v)


class Hist:
    """Histogram child: per-bucket (non-cumulative) counts, the last slot is the +Inf overflow."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, v: float, n: int = 1) -> None:
        if n > 0:
            self.counts[bisect_left(self.bounds, v)] += n
            self.sum += v * n

    @property
    def count(self) -> int:
        return sum(self.counts)

    def emit(self, out: list[float]) -> None:  # buckets…, _count, _sum (single-process registry)
        cum = list(accumulate(self.counts))
        out.extend(cum)
        out.append(cum[-1])
        out.append(self.sum)

    def emit_mp(self, out: list[float]) -> None:  # _sum, buckets…, _count (MultiProcessCollector order)
        cum = list(accumulate(self.counts))
        out.append(self.sum)
        out.extend(cum)
        out.append(cum[-1])


class _Summ:
    """Summary child without quantiles (prometheus-fastapi-instrumentator's size metrics)."""

    __slots__ = ("count", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0

    def emit(self, out: list[float]) -> None:
        out.append(self.count)
        out.append(self.sum)


_Child = Num | Hist | _Summ


class Family:
    __slots__ = ("buckets", "children", "created", "created_ts", "help", "kind", "labelnames", "name", "nan", "reg")

    def __init__(
        self,
        reg: Registry,
        name: str,
        help_: str,
        kind: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...],
        created: bool,
        nan: bool,
    ) -> None:
        self.reg = reg
        self.name = name  # counters: without the _total suffix
        self.help = help_
        self.kind = kind  # counter | gauge | histogram | summary
        self.labelnames = labelnames
        self.buckets = buckets
        self.created = created
        self.nan = nan
        self.children: dict[tuple[str, ...], _Child] = {}
        self.created_ts: dict[tuple[str, ...], float] = {}

    def child(self, *values: str, created: float = 0.0, value: float = 0.0) -> Any:
        """The child for ``values`` (in ``labelnames`` order), created on first use."""
        c = self.children.get(values)
        if c is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            if self.kind == "histogram":
                c = Hist(self.buckets)
            elif self.kind == "summary":
                c = _Summ()
            else:
                c = Num(value)
            self.children[values] = c
            self.created_ts[values] = created
            self.reg.dirty = True
        return c


class Registry:
    """Ordered families rendered through a ``%`` template that is rebuilt only when the label sets change."""

    def __init__(self, fmt: Callable[[float], str], multiprocess: bool) -> None:
        self.fmt = fmt
        self.multiprocess = multiprocess
        self.families: list[Family] = []
        self.dirty = True
        self._template = ""
        self._emit: list[Callable[[list[float]], None]] = []
        self._nan_slots: list[int] = []

    def family(
        self,
        name: str,
        help_: str,
        kind: str,
        labelnames: tuple[str, ...] = (),
        *,
        buckets: tuple[float, ...] = (),
        created: bool = False,
        nan: bool = False,
    ) -> Family:
        fam = Family(self, name, help_, kind, labelnames, buckets, created, nan)
        self.families.append(fam)
        self.dirty = True
        return fam

    def _build(self) -> None:
        fmt = self.fmt
        parts: list[str] = []
        emit: list[Callable[[list[float]], None]] = []
        nan_slots: list[int] = []
        n = 0
        for f in self.families:
            if self.multiprocess and not f.children:
                continue  # a MultiProcessCollector only knows families that have written a value
            expo = f.name + "_total" if f.kind == "counter" else f.name
            parts.append(_pct(f"# HELP {expo} {_esc_help(f.help)}\n# TYPE {expo} {f.kind}\n"))
            for values, ch in f.children.items():
                lab = _labels(f.labelnames, values)
                br = "{" + lab + "}" if lab else ""
                if isinstance(ch, Num):
                    parts.append(_pct(f"{expo}{br}") + " %s\n")
                    emit.append(ch.emit)
                    if f.nan:
                        nan_slots.append(n)
                    n += 1
                elif isinstance(ch, Hist):
                    les = [*(fmt(b) for b in f.buckets), "+Inf"]
                    lines = [f"{f.name}_bucket{{{_labels(f.labelnames, values, ('le', le))}}}" for le in les]
                    if self.multiprocess:
                        lines = [f"{f.name}_sum{br}", *lines, f"{f.name}_count{br}"]
                        emit.append(ch.emit_mp)
                    else:
                        lines += [f"{f.name}_count{br}", f"{f.name}_sum{br}"]
                        emit.append(ch.emit)
                    parts.extend(_pct(line) + " %s\n" for line in lines)
                    n += len(lines)
                else:
                    parts.append(_pct(f"{f.name}_count{br}") + " %s\n")
                    parts.append(_pct(f"{f.name}_sum{br}") + " %s\n")
                    emit.append(ch.emit)
                    n += 2
            if f.created and f.children:
                cname = f.name + "_created"
                parts.append(_pct(f"# HELP {cname} {_esc_help(f.help)}\n# TYPE {cname} gauge\n"))
                for values in f.children:
                    lab = _labels(f.labelnames, values)
                    br = "{" + lab + "}" if lab else ""
                    parts.append(_pct(f"{cname}{br} {fmt(f.created_ts[values])}\n"))
        self._template = "".join(parts)
        self._emit = emit
        self._nan_slots = nan_slots
        self.dirty = False

    def render(self, nan: bool = False) -> bytes:
        if self.dirty:
            self._build()
        out: list[float] = []
        for e in self._emit:
            e(out)
        if nan:
            for j, i in enumerate(self._nan_slots):
                out[i] = _NAN if j % 2 == 0 else _INF
        return (self._template % tuple(map(self.fmt, out))).encode()

"""The aggregator's alert rule engine: declarative YAML rules evaluated on snapshots as they arrive.

Pure: no I/O beyond reading the rules file. A rule names one event type (its tag, ``vllm.instance``),
optionally a list field to iterate (``each: engines``: one alert per item), a condition in a small
safe expression language, labels and annotations templated from the fields, a ``for`` duration and a
severity. ``kind: silent`` rules fire when a source of that event type stops publishing.

Expression language (``when``): Python expression syntax restricted to names, attribute access,
constants, ``and/or/not``, comparisons, ``+ - * /`` and the functions in `FUNCTIONS`. A name resolves
on the item first, then on the snapshot (``snapshot.x`` forces the snapshot). ``None`` (a field the
source does not report) makes any comparison false, so missing data never fires an alert.
``increase(x)`` is the growth of a cumulative value since the item's previous snapshot and
``increase(x, 300)`` over the last 300 s; on a histogram it is taken bucket by bucket, so
``p95(increase(time_to_first_token_seconds, 300))`` is the p95 of the last five minutes' requests, as PromQL's
``histogram_quantile(0.95, rate(…[5m]))``, rather than of the collector's whole lifetime.
"""

from __future__ import annotations

import ast
import hashlib
import math
import operator
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, get_args

import msgspec
import yaml  # type: ignore[import-untyped]

from inferwatch.contracts.alert import Alert, AlertState, Severity
from inferwatch.contracts.base import Event, Histogram, Snapshot
from inferwatch.contracts.registry import EVENT_TYPES

DEFAULT_RULES_FILE = Path(__file__).with_name("rules") / "default.yaml"
SEVERITIES: dict[str, Severity] = {severity: severity for severity in get_args(Severity)}
COLLECTOR = "aggregator"


class RuleError(ValueError):
    """A rule file or rule is invalid (the message names the rule and what is wrong)."""


def histogram_quantile(q: float, hist: Histogram | None) -> float | None:
    """The ``q`` quantile of a cumulative histogram, interpolated as Prometheus does; None if empty."""
    if hist is None or hist.count <= 0:
        return None
    rank = q * hist.count
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in hist.buckets:
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return hist.buckets[-1][0] if hist.buckets else None


def histogram_growth(before: Histogram, after: Histogram) -> Histogram | None:
    """``after - before`` bucket by bucket; ``after`` itself when the histogram was reset; None when the
    bucket bounds changed (the two cannot be compared)."""
    if [b for b, _ in before.buckets] != [b for b, _ in after.buckets]:
        return None
    if after.count < before.count:  # reset: what was observed since the reset
        return after
    return Histogram(
        buckets=[(bound, max(0.0, c - p)) for (bound, c), (_, p) in zip(after.buckets, before.buckets, strict=True)],
        sum=max(0.0, after.sum - before.sum),
        count=after.count - before.count,
    )


def counter_growth(before: float, after: float) -> float:
    """How much a counter grew from ``before`` to ``after``; a counter that went down was reset and counts from
    zero, as ``increase()`` does in PromQL."""
    return after if after < before else after - before


def _growth(before: float | Histogram, after: float | Histogram) -> float | Histogram | None:
    if isinstance(after, Histogram):
        return histogram_growth(before, after) if isinstance(before, Histogram) else None
    if isinstance(before, Histogram):
        return None
    return counter_growth(before, after)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _sum_values(mapping: Mapping[str, float] | None) -> float | None:
    return None if mapping is None else float(sum(mapping.values()))


def _len(value: Iterable[object] | None) -> float | None:
    return None if value is None else float(len(list(value)))


# name -> (function, number of args). ``increase`` is stateful and handled by the evaluator.
FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "p50": (lambda h: histogram_quantile(0.5, h), 1),
    "p95": (lambda h: histogram_quantile(0.95, h), 1),
    "p99": (lambda h: histogram_quantile(0.99, h), 1),
    "ratio": (_ratio, 2),
    "sum_values": (_sum_values, 1),
    "len": (_len, 1),
    "get": (lambda m, k: None if m is None else m.get(k), 2),
    "increase": (lambda x, window_s=0.0: x, 2),  # 1 or 2 arguments; evaluated by Scope.increase
}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class Expression:
    """A compiled, validated ``when`` condition."""

    def __init__(self, source: str, rule: str) -> None:
        self.source = source
        self.rule = rule
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            raise RuleError(f"rule {rule}: cannot parse when={source!r}: {exc.msg}") from None
        self.tree = tree.body
        self.increase_sites = 0
        self._check(self.tree)

    def _check(self, node: ast.AST) -> None:
        allowed = (
            ast.BoolOp,
            ast.And,
            ast.Or,
            ast.UnaryOp,
            ast.Not,
            ast.USub,
            ast.Compare,
            ast.BinOp,
            ast.Name,
            ast.Load,
            ast.Attribute,
            ast.Constant,
            ast.Call,
            ast.Tuple,
            ast.List,
            *_COMPARE,
            *_ARITH,
        )
        if not isinstance(node, allowed):
            raise RuleError(f"rule {self.rule}: {type(node).__name__} is not allowed in when={self.source!r}")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise RuleError(
                    f"rule {self.rule}: unknown function in when={self.source!r} "
                    f"(known: {', '.join(sorted(FUNCTIONS))})"
                )
            arity = FUNCTIONS[node.func.id][1]
            if node.func.id == "increase":
                window = node.args[1] if len(node.args) == 2 else ast.Constant(0)
                if (
                    node.keywords
                    or len(node.args) not in (1, 2)
                    or not isinstance(window, ast.Constant)
                    or not isinstance(window.value, int | float)
                    or window.value < 0
                ):
                    raise RuleError(
                        f"rule {self.rule}: increase() takes a value and optionally a window in seconds (a number >= 0)"
                    )
                node.site = self.increase_sites  # type: ignore[attr-defined]
                self.increase_sites += 1
            elif node.keywords or len(node.args) != arity:
                raise RuleError(f"rule {self.rule}: {node.func.id}() takes {arity} argument(s)")
            for arg in node.args:
                self._check(arg)
            return
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise RuleError(f"rule {self.rule}: private attribute {node.attr!r} in when={self.source!r}")
        for child in ast.iter_child_nodes(node):
            self._check(child)

    def names(self) -> set[str]:
        """Top-level names the expression reads (for validating against the event's fields)."""
        called = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and id(n) not in called}

    def evaluate(self, scope: Scope) -> Any:
        """Evaluate; ``None`` propagates through arithmetic and makes comparisons false."""
        return self._eval(self.tree, scope)

    def _eval(self, node: ast.AST, scope: Scope) -> Any:
        # One dict look-up by node type (a parsed tree holds the ast classes themselves, never subclasses) rather
        # than a chain of isinstance checks: this runs for every node of every rule on every item.
        evaluate = _EVALUATORS.get(type(node))
        if evaluate is None:  # pragma: no cover  # _check admits only the node types below
            raise RuleError(f"rule {self.rule}: cannot evaluate {type(node).__name__}")
        return evaluate(self, node, scope)

    def _eval_constant(self, node: ast.Constant, scope: Scope) -> Any:
        return node.value

    def _eval_name(self, node: ast.Name, scope: Scope) -> Any:
        return scope.lookup(node.id)

    def _eval_attribute(self, node: ast.Attribute, scope: Scope) -> Any:
        base = self._eval(node.value, scope)
        return None if base is None else getattr(base, node.attr, None)

    def _eval_boolop(self, node: ast.BoolOp, scope: Scope) -> Any:
        values = [self._eval(v, scope) for v in node.values]  # every operand: each increase() sees every snapshot
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def _eval_sequence(self, node: ast.Tuple | ast.List, scope: Scope) -> Any:
        return tuple(self._eval(e, scope) for e in node.elts)

    def _eval_unary(self, node: ast.UnaryOp, scope: Scope) -> Any:
        value = self._eval(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return not value
        return None if value is None else -value

    def _eval_binop(self, node: ast.BinOp, scope: Scope) -> Any:
        left, right = self._eval(node.left, scope), self._eval(node.right, scope)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div) and right == 0:
            return None
        return _ARITH[type(node.op)](left, right)

    def _eval_compare(self, node: ast.Compare, scope: Scope) -> bool:
        left = self._eval(node.left, scope)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comparator, scope)
            if left is None or right is None:
                return False
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def _eval_call(self, node: ast.Call, scope: Scope) -> Any:
        assert isinstance(node.func, ast.Name)
        args = [self._eval(a, scope) for a in node.args]
        if node.func.id == "increase":
            return scope.increase(node.site, args[0], float(args[1]) if len(args) == 2 else 0.0)  # type: ignore[attr-defined]
        return FUNCTIONS[node.func.id][0](*args)


_EVALUATORS: dict[type[ast.AST], Callable[[Expression, Any, Scope], Any]] = {
    ast.Constant: Expression._eval_constant,
    ast.Name: Expression._eval_name,
    ast.Attribute: Expression._eval_attribute,
    ast.BoolOp: Expression._eval_boolop,
    ast.UnaryOp: Expression._eval_unary,
    ast.BinOp: Expression._eval_binop,
    ast.Compare: Expression._eval_compare,
    ast.Tuple: Expression._eval_sequence,
    ast.List: Expression._eval_sequence,
    ast.Call: Expression._eval_call,
}

Sample = tuple[float, float | Histogram]  # (evaluation time, cumulative value)


@dataclass
class Scope:
    """Name resolution for one (snapshot, item) pair, plus the memory ``increase()`` needs."""

    snapshot: Event
    item: object | None
    memory: dict[int, list[Sample]]
    now: float = 0.0
    new_memory: dict[int, list[Sample]] = field(default_factory=dict)

    def lookup(self, name: str) -> Any:
        """Item field, else snapshot field; ``snapshot``/``item`` name the objects themselves."""
        if name == "snapshot":
            return self.snapshot
        if name == "item":
            return self.item
        if self.item is not None and hasattr(self.item, name):
            return getattr(self.item, name)
        return getattr(self.snapshot, name, None)

    def increase(self, site: int, value: Any, window_s: float = 0.0) -> float | Histogram | None:
        """How much a cumulative value (a number or a histogram) grew over the last ``window_s`` seconds,
        or since this item's previous snapshot when ``window_s`` is 0; None without an earlier sample.

        Kept: the newest sample before the window as the baseline, and samples inside it at least a tenth of
        the window apart, so memory stays at a dozen samples per item however often snapshots come (the
        window is then up to 10 % longer than asked).
        """
        if value is None:
            return None
        current: float | Histogram = value if isinstance(value, Histogram) else float(value)
        start = self.now - window_s
        history = self.memory.get(site, [])
        kept = [s for s in history if s[0] <= start][-1:] + [s for s in history if s[0] > start]
        crowded = window_s > 0 and len(kept) > 1 and self.now - kept[-1][0] < window_s / 10
        self.new_memory[site] = kept if crowded else [*kept, (self.now, current)]
        return _growth(kept[0][1], current) if kept else None


class _Fields(string.Formatter):
    """``{name}`` / ``{item.x}`` templates over a scope; unknown fields render as ``""``."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        scope: Scope = kwargs["scope"]
        head, *rest = field_name.split(".")
        value = scope.lookup(head)
        for part in rest:
            value = None if value is None or part.startswith("_") else getattr(value, part, None)
        return ("" if value is None else value), field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _Fields()


def render_template(template: str, scope: Scope) -> str:
    """Fill ``{field}`` placeholders from the scope."""
    try:
        return _FORMATTER.vformat(template, (), {"scope": scope})
    except (KeyError, IndexError, ValueError) as exc:
        return f"{template} (template error: {exc})"


@dataclass(frozen=True)
class Rule:
    """One alert rule (see the module docstring and rules/default.yaml)."""

    name: str
    event: str
    when: Expression | None
    kind: str = "condition"
    each: str = ""
    for_s: float = 0.0
    severity: Severity = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    silent_after_s: float = 0.0


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object, rule: str) -> float:
    """``30s`` / ``5m`` / ``1h`` / a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
            if value.endswith(unit):
                try:
                    return float(value[: -len(unit)]) * _DURATION_UNITS[unit]
                except ValueError:
                    break
    raise RuleError(f"rule {rule}: bad duration {value!r} (use 30s, 5m, 1h)")


def _event_types() -> dict[str, type[Event]]:
    return {t.__struct_config__.tag: t for t in EVENT_TYPES if isinstance(t.__struct_config__.tag, str)}


def _field_names(struct_type: type) -> set[str]:
    return set(getattr(struct_type, "__struct_fields__", ()))


def _item_type(event_type: type[Event], each: str) -> type | None:
    for f in msgspec.structs.fields(event_type):
        if f.name == each:
            args = getattr(f.type, "__args__", ())
            return args[0] if args else None
    return None


_RULE_KEYS = {"alert", "event", "kind", "each", "when", "for", "severity", "labels", "annotations", "after", "disabled"}


def parse_rule(raw: Mapping[str, Any]) -> Rule:
    """Validate one rule mapping: known event type, fields that exist, a compilable condition."""
    name = raw.get("alert")
    if not isinstance(name, str) or not name.isidentifier():
        raise RuleError(f"rule needs alert: <Identifier>, got {name!r}")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise RuleError(f"rule {name}: unknown keys {sorted(unknown)}")
    types = _event_types()
    tag = raw.get("event")
    if tag not in types:
        raise RuleError(f"rule {name}: unknown event {tag!r} (known: {', '.join(sorted(types))})")
    event_type = types[tag]
    kind = raw.get("kind", "condition")
    severity = SEVERITIES.get(raw.get("severity", "warning"))
    if severity is None:
        raise RuleError(f"rule {name}: severity must be one of {tuple(SEVERITIES)}")
    labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (raw.get("annotations") or {}).items()}
    if kind == "silent":
        return Rule(
            name=name,
            event=tag,
            when=None,
            kind=kind,
            severity=severity,
            labels=labels,
            annotations=annotations,
            silent_after_s=parse_duration(raw.get("after", "60s"), name),
        )
    if kind != "condition":
        raise RuleError(f"rule {name}: kind must be condition or silent")
    each = str(raw.get("each", ""))
    fields = _field_names(event_type)
    if each:
        item_type = _item_type(event_type, each)
        if item_type is None:
            raise RuleError(f"rule {name}: {tag} has no list field {each!r}")
        fields |= _field_names(item_type)
    if not isinstance(raw.get("when"), str):
        raise RuleError(f"rule {name}: needs when: <expression>")
    when = Expression(raw["when"], name)
    missing = when.names() - fields - {"snapshot", "item", "True", "False", "None"}
    if missing:
        raise RuleError(f"rule {name}: {tag}{'/' + each if each else ''} has no field(s) {sorted(missing)}")
    return Rule(
        name=name,
        event=tag,
        when=when,
        kind=kind,
        each=each,
        for_s=parse_duration(raw.get("for", 0), name),
        severity=severity,
        labels=labels,
        annotations=annotations,
    )


def read_listing(path: Path | str, key: str, error: type[ValueError]) -> dict[str, Any]:
    """The YAML mapping at ``path`` whose ``key`` is a list (a rules or SLO file); an unreadable, malformed or
    differently shaped file raises ``error`` naming it."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise error(f"{path}: expected a mapping with a '{key}' list")
    return doc


def load_rules(*paths: Path | str) -> list[Rule]:
    """Rules from YAML files (``rules: [...]``); a later file's rule replaces an earlier one of the
    same name, and ``disabled: true`` removes it."""
    merged: dict[str, Mapping[str, Any]] = {}
    for path in paths:
        doc = read_listing(path, "rules", RuleError)
        for raw in doc["rules"]:
            if not isinstance(raw, dict):
                raise RuleError(f"{path}: each rule must be a mapping")
            name = str(raw.get("alert"))
            if raw.get("disabled"):
                merged.pop(name, None)
            else:
                merged[name] = raw
    return [parse_rule(raw) for raw in merged.values()]


def fingerprint(name: str, labels: Mapping[str, str]) -> str:
    """Stable id of an alert instance: rule name + sorted labels."""
    text = name + "\0" + "\0".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.blake2s(text.encode(), digest_size=8).hexdigest()


@dataclass
class _Instance:
    rule: Rule
    labels: dict[str, str]
    annotations: dict[str, str]
    source_key: tuple[str, str]
    pending_since: float
    value: float | None
    firing: bool = False
    starts_at: float = 0.0


@dataclass(slots=True)
class _SourceSeen:
    at: float
    interval_s: float
    observed_at: float = 0.0
    expired: bool = False
    instances: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)  # silence alerts firing for this source


class AlertSource(Protocol):
    """Another evaluator whose alerts travel the engine's path (the SLOs' burn-rate alerts): it sees every event
    and every tick, and says what fires."""

    def on_event(self, event: Event, now: float) -> list[Alert]:
        """Transitions caused by this event."""

    def tick(self, now: float) -> list[Alert]:
        """Time-driven transitions."""

    def firing(self) -> list[Alert]:
        """Every alert firing now."""

    def watches(self, event_type: type[Event]) -> bool:
        """Whether ``on_event`` can do anything with events of this type (the engine skips it for the others)."""


@dataclass(frozen=True, slots=True)
class _TypePlan:
    """What the engine does with one event type, worked out at its first event: the ingest path then costs one
    dict look-up for a type nothing reads."""

    tag: str
    rules: tuple[Rule, ...]
    tracked: bool  # a condition or silent rule names the type: its sources are followed in ``_seen``
    snapshot: bool  # a `Snapshot` type (its sources announce an interval)
    extensions: tuple[AlertSource, ...]  # the extensions that watch the type


class AlertEngine:
    """Evaluates rules on events; returns `Alert` transitions (firing / resolved), deduplicated."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        expiry_intervals: float = 3.0,
        forget_after_s: float = 600.0,
        extensions: Iterable[AlertSource] = (),
    ) -> None:
        """``expiry_intervals``: a source's condition alerts resolve after this many intervals of silence (as the
        aggregator expires it); ``forget_after_s``: a silent source is forgotten (its silence alert resolves), as
        the aggregator drops its tombstone, so a restarted collector's old instance does not alert forever;
        ``extensions``: other evaluators whose alerts go the same way (`AlertSource`)."""
        self.rules = list(rules)
        self.extensions = list(extensions)
        self.expiry_intervals = expiry_intervals
        self.forget_after_s = forget_after_s
        self._by_event: dict[str, list[Rule]] = {}
        self._silent: list[Rule] = []
        for rule in self.rules:
            if rule.kind == "silent":
                self._silent.append(rule)
            else:
                self._by_event.setdefault(rule.event, []).append(rule)
        self._silent_tags = {r.event for r in self._silent}
        self._plans: dict[type[Event], _TypePlan] = {}
        self._instances: dict[str, _Instance] = {}
        self._memory: dict[tuple[str, str, str, str], dict[int, list[Sample]]] = {}
        self._seen: dict[tuple[str, str], _SourceSeen] = {}
        self.evaluation_errors: dict[str, int] = {}

    def firing(self) -> list[Alert]:
        """Every alert firing now (for the status page)."""
        own = [self._alert(fp, inst, "firing", 0.0) for fp, inst in sorted(self._instances.items()) if inst.firing]
        return own + [alert for extension in self.extensions for alert in extension.firing()]

    def on_event(self, event: Event, now: float) -> list[Alert]:
        """Evaluate the rules for this event's type; cheap when there are none. Never raises (the ingest hot
        path calls it): an unexpected error is counted in ``evaluation_errors["engine"]``."""
        try:
            plan = self._plans.get(type(event)) or self._plan(type(event))
            out = self._on_event(event, now, plan) if plan.tracked else []
            for extension in plan.extensions:
                out += extension.on_event(event, now)
            return out
        except Exception:  # a rule must never break ingestion
            self.evaluation_errors["engine"] = self.evaluation_errors.get("engine", 0) + 1
            return []

    def _plan(self, event_type: type[Event]) -> _TypePlan:
        tag = str(event_type.__struct_config__.tag)
        rules = tuple(self._by_event.get(tag, ()))
        extensions = tuple(extension for extension in self.extensions if extension.watches(event_type))
        tracked = bool(rules) or tag in self._silent_tags
        plan = self._plans[event_type] = _TypePlan(tag, rules, tracked, issubclass(event_type, Snapshot), extensions)
        return plan

    def _on_event(self, event: Event, now: float, plan: _TypePlan) -> list[Alert]:
        rules = plan.rules
        key = (plan.tag, event.source)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _SourceSeen(now, 0.0)
        if event.observed_at < seen.observed_at:
            return []  # out of order: the aggregator's table drops it too
        seen.observed_at = event.observed_at
        seen.at = now
        seen.expired = False
        seen.interval_s = event.interval_s if plan.snapshot else 0.0  # type: ignore[attr-defined]
        if not rules and not seen.silent and not seen.instances:
            return []  # only watched for silence (a heartbeat flood ends here): nothing to evaluate or clear
        out: list[Alert] = []
        if seen.silent:  # the source spoke again (kept per source: a heartbeat flood must not hash labels)
            out.extend(self._resolve(fp, now) for fp in seen.silent if fp in self._instances)
            seen.silent = set()
        active: set[str] = set()
        item_keys: dict[int, str] = {}  # by id(item): several rules iterate the same items
        for rule in rules:
            items: Iterable[object | None] = getattr(event, rule.each, None) or () if rule.each else (None,)
            for item in items:
                out.extend(self._evaluate(rule, event, item, key, now, active, item_keys))
        for fp in seen.instances - active:
            out.extend(self._clear(fp, now))
        seen.instances = active
        return out

    def _evaluate(
        self,
        rule: Rule,
        event: Event,
        item: object | None,
        key: tuple[str, str],
        now: float,
        active: set[str],
        item_keys: dict[int, str],
    ) -> list[Alert]:
        """One rule on one item; ``item_keys`` caches the items' memory keys for the event's other rules."""
        assert rule.when is not None
        memory_key: tuple[str, str, str, str] | None = None
        memory: dict[int, list[Sample]] = {}
        if rule.when.increase_sites:  # only increase() keeps memory: the others need no item key
            item_key = item_keys.get(id(item))
            if item_key is None:
                item_key = item_keys[id(item)] = repr(_item_id(item))
            memory_key = (key[0], key[1], rule.name, item_key)
            memory = self._memory.get(memory_key, memory)
        scope = Scope(event, item, memory, now)
        try:
            result = rule.when.evaluate(scope)
        except (TypeError, ValueError, ArithmeticError, AttributeError):
            self.evaluation_errors[rule.name] = self.evaluation_errors.get(rule.name, 0) + 1
            return []
        if memory_key is not None:
            self._memory[memory_key] = scope.new_memory
        if not result:
            return []
        fp = self._fingerprint(rule, scope)
        active.add(fp)
        value = float(result) if isinstance(result, int | float) and not isinstance(result, bool) else None
        inst = self._instances.get(fp)
        if inst is None:
            inst = self._instances[fp] = _Instance(rule, self._labels(rule, scope), {}, key, now, value)
        inst.value = value
        inst.annotations = {k: render_template(v, scope) for k, v in rule.annotations.items()}
        if not inst.firing and now - inst.pending_since >= rule.for_s:
            inst.firing = True
            inst.starts_at = now
            return [self._alert(fp, inst, "firing", 0.0)]
        return []

    def _labels(self, rule: Rule, scope: Scope) -> dict[str, str]:
        labels = {k: render_template(v, scope) for k, v in rule.labels.items()}
        return {"alertname": rule.name, "severity": rule.severity, **labels}

    def _silent_labels(self, rule: Rule, source: str) -> dict[str, str]:
        scope = Scope(_SourcePlaceholder(source), None, {})  # type: ignore[arg-type]
        return self._labels(rule, scope) | {"source": source}

    def _fingerprint(self, rule: Rule, scope: Scope) -> str:
        return fingerprint(rule.name, self._labels(rule, scope))

    def _clear(self, fp: str, now: float) -> list[Alert]:
        inst = self._instances.get(fp)
        if inst is None:
            return []
        if inst.firing:
            return [self._resolve(fp, now)]
        del self._instances[fp]
        return []

    def _resolve(self, fp: str, now: float) -> Alert:
        inst = self._instances.pop(fp)
        return self._alert(fp, inst, "resolved", now)

    def tick(self, now: float) -> list[Alert]:
        """Time-driven work: pending alerts whose ``for`` elapsed, silent sources, expired sources."""
        out: list[Alert] = []
        for key, seen in list(self._seen.items()):
            silence = now - seen.at
            horizon = self.expiry_intervals * seen.interval_s if seen.interval_s > 0 else math.inf
            if silence >= horizon and not seen.expired:
                seen.expired = True
                for fp in seen.instances:
                    out.extend(self._clear(fp, now))
                seen.instances = set()
                self._memory = {k: v for k, v in self._memory.items() if k[:2] != key}
            if silence >= self.forget_after_s:
                out.extend(self._resolve(fp, now) for fp in seen.silent if fp in self._instances)
                del self._seen[key]
                continue
            for rule in self._silent:
                if rule.event == key[0] and silence >= rule.silent_after_s:
                    out.extend(self._fire_silent(rule, key, silence, now))
        for fp, inst in list(self._instances.items()):
            if not inst.firing and inst.rule.kind == "condition" and now - inst.pending_since >= inst.rule.for_s:
                inst.firing = True
                inst.starts_at = now
                out.append(self._alert(fp, inst, "firing", 0.0))
        for extension in self.extensions:
            out += extension.tick(now)
        return out

    def _fire_silent(self, rule: Rule, key: tuple[str, str], silence: float, now: float) -> list[Alert]:
        scope = Scope(_SourcePlaceholder(key[1]), None, {})  # type: ignore[arg-type]
        labels = self._silent_labels(rule, key[1])
        fp = fingerprint(rule.name, labels)
        if fp in self._instances:
            self._instances[fp].value = silence
            return []
        inst = self._instances[fp] = _Instance(rule, labels, {}, key, now, silence, firing=True, starts_at=now)
        self._seen[key].silent.add(fp)
        inst.annotations = {k: render_template(v, scope) for k, v in rule.annotations.items()}
        return [self._alert(fp, inst, "firing", 0.0)]

    def _alert(self, fp: str, inst: _Instance, state: AlertState, ends_at: float) -> Alert:
        return Alert(
            source=fp,
            observed_at=ends_at or inst.starts_at,
            collector=COLLECTOR,
            name=inst.rule.name,
            state=state,
            severity=inst.rule.severity,
            labels=dict(inst.labels),
            annotations=dict(inst.annotations),
            starts_at=inst.starts_at,
            ends_at=ends_at,
            value=inst.value,
        )


@dataclass(frozen=True)
class _SourcePlaceholder:
    """What a silent rule's templates can read: the silent source's key."""

    source: str


def _item_id(item: object | None) -> object:
    if item is None:
        return None
    if isinstance(item, msgspec.Struct):
        values = [getattr(item, f) for f in item.__struct_fields__]
        return tuple(v for v in values if isinstance(v, str))
    return item

"""The two copies of the default alert rules agree rule by rule.

``services/aggregator/rules/default.yaml`` (the aggregator's rule language, evaluated on the NATS path) and
``deploy/prometheus/rules/inferwatch.rules.yml`` (PromQL) hold the same rules. For every alert this test
compares what both copies say: severity, ``for``, runbook, the label keys the alert carries, and the numbers
in the condition (comparison thresholds, ``increase``/range windows, histogram quantiles). Field and metric
names are not compared: they are spelled differently on each side by design.

A PromQL alert's label keys are taken from its promtool unit test (``exp_labels``, which promtool checks
against the expression); the engine's from the rule's ``labels`` (plus ``source`` on a silent rule, which
the engine adds). A difference on purpose is declared in `INTENDED` with the exact values of both sides and
the reason; anything else fails.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE, Rule, load_rules, parse_duration

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
PROM_RULES = PROM / "rules" / "inferwatch.rules.yml"
PROM_TESTS = PROM / "tests" / "inferwatch.test.yml"

Threshold = tuple[str, float]  # (comparison operator, constant)


@dataclass(frozen=True)
class RuleFacts:
    """What one copy of a rule says, in terms both copies share."""

    severity: str
    for_s: float
    runbook_url: str
    label_keys: frozenset[str]
    thresholds: frozenset[Threshold]
    windows_s: frozenset[float]
    quantiles: frozenset[float]


@dataclass(frozen=True)
class Intended:
    """A difference on purpose: the value of one fact in each copy, and why they differ."""

    engine: object
    promql: object
    reason: str


_BOOLEAN_GAUGE = "PromQL reads the {what} as a 0/1 gauge: `{promql}` is the engine's `{engine}`"
_SINCE_PREVIOUS_SNAPSHOT = (
    "the engine's increase() without a window is the growth since the item's previous snapshot, so the alert "
    "fires on the poll that saw it; PromQL needs a range"
)

INTENDED: dict[tuple[str, str], Intended] = {
    ("VllmTargetDown", "thresholds"): Intended(
        frozenset(), frozenset({("==", 0.0)}), _BOOLEAN_GAUGE.format(what="`up` field", promql="== 0", engine="not up")
    ),
    ("LitellmProxyDown", "thresholds"): Intended(
        frozenset(), frozenset({("==", 0.0)}), _BOOLEAN_GAUGE.format(what="`up` field", promql="== 0", engine="not up")
    ),
    ("VllmModelStuckLoading", "thresholds"): Intended(
        frozenset(),
        frozenset({("==", 1.0)}),
        _BOOLEAN_GAUGE.format(what="status (a series per state)", promql='{status="loading"} == 1', engine="status =="),
    ),
    ("LitellmDeploymentUnhealthy", "thresholds"): Intended(
        frozenset(),
        frozenset({("==", 1.0)}),
        _BOOLEAN_GAUGE.format(what="status (a series per state)", promql='{status=~"…"} == 1', engine="status in"),
    ),
    ("GpuThrottling", "thresholds"): Intended(
        frozenset({(">", 0.0)}),
        frozenset({("==", 1.0), (">", 0.0)}),
        _BOOLEAN_GAUGE.format(
            what="throttle reasons (one series per reason)", promql="count(… == 1) > 0", engine="len(…) > 0"
        ),
    ),
    ("VllmPreemptions", "windows_s"): Intended(frozenset(), frozenset({300.0}), _SINCE_PREVIOUS_SNAPSHOT),
    ("LitellmFallbacks", "windows_s"): Intended(frozenset(), frozenset({300.0}), _SINCE_PREVIOUS_SNAPSHOT),
    ("LitellmErrorRateHigh", "windows_s"): Intended(frozenset(), frozenset({300.0}), _SINCE_PREVIOUS_SNAPSHOT),
    ("LangfuseErrorRateHigh", "windows_s"): Intended(frozenset(), frozenset({900.0}), _SINCE_PREVIOUS_SNAPSHOT),
    ("LitellmSpendRateHigh", "windows_s"): Intended(
        frozenset(),
        frozenset({60.0}),
        "the engine's threshold is 1 USD per poll, PromQL's 1 USD per minute (a poll has no fixed length in PromQL)",
    ),
}

# --- the engine's copy -------------------------------------------------------------------------------

_OPERATORS: dict[type[ast.cmpop], str] = {
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_QUANTILE_FUNCTION = re.compile(r"p(\d\d)")  # p50, p95, p99


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def engine_facts(rule: Rule) -> RuleFacts:
    """The facts of one rule of the engine's copy, read from its compiled condition."""
    thresholds: set[Threshold] = set()
    windows: set[float] = set()
    quantiles: set[float] = set()
    if rule.kind == "silent":  # fires when the source's last snapshot is older than `after`
        thresholds.add((">", rule.silent_after_s))
    else:
        assert rule.when is not None
        for node in ast.walk(rule.when.tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
                    constant = _number(right)
                    if type(op) in _OPERATORS and constant is not None and _number(left) is None:
                        thresholds.add((_OPERATORS[type(op)], constant))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "increase" and len(node.args) == 2:
                    window = _number(node.args[1])
                    assert window is not None
                    windows.add(window)
                elif quantile := _QUANTILE_FUNCTION.fullmatch(node.func.id):
                    quantiles.add(int(quantile.group(1)) / 100)
    label_keys = set(rule.labels) | ({"source"} if rule.kind == "silent" else set())
    return RuleFacts(
        severity=rule.severity,
        for_s=rule.for_s,
        runbook_url=rule.annotations.get("runbook_url", ""),
        label_keys=frozenset(label_keys),
        thresholds=frozenset(thresholds),
        windows_s=frozenset(windows),
        quantiles=frozenset(quantiles),
    )


# --- the PromQL copy ---------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])")
_RANGE = re.compile(r"\[(\d+[smhd])\]")
_HISTOGRAM_QUANTILE = re.compile(r"histogram_quantile\(\s*(\d*\.?\d+)")


def _inline_recording_rules(expr: str, recorded: dict[str, str]) -> str:
    for name, definition in recorded.items():
        expr = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", f"({definition})", expr)
    return expr


def _promql_label_keys() -> dict[str, frozenset[str]]:
    """Per alert, the label keys its promtool unit tests expect (severity aside); every test must agree."""
    keys: dict[str, set[frozenset[str]]] = {}
    for test in yaml.safe_load(PROM_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case["exp_alerts"]:
                keys.setdefault(case["alertname"], set()).add(frozenset(alert["exp_labels"]) - {"severity"})
    for name, variants in keys.items():
        assert len(variants) == 1, f"{PROM_TESTS.name}: the tests of {name} expect different label keys: {variants}"
    return {name: next(iter(variants)) for name, variants in keys.items()}


def promql_facts() -> dict[str, RuleFacts]:
    """The facts of every alert of the PromQL copy, recording rules inlined into the alerts that use them."""
    rules = [r for group in yaml.safe_load(PROM_RULES.read_text())["groups"] for r in group["rules"]]
    recorded = {r["record"]: r["expr"] for r in rules if "record" in r}
    label_keys = _promql_label_keys()
    facts: dict[str, RuleFacts] = {}
    for rule in (r for r in rules if "alert" in r):
        name = rule["alert"]
        expr = _STRING.sub('""', _inline_recording_rules(rule["expr"], recorded))
        facts[name] = RuleFacts(
            severity=rule["labels"]["severity"],
            for_s=parse_duration(rule.get("for", "0s"), name),
            runbook_url=rule["annotations"].get("runbook_url", ""),
            label_keys=label_keys.get(name, frozenset()),
            thresholds=frozenset((op, float(value)) for op, value in _COMPARISON.findall(expr)),
            windows_s=frozenset(parse_duration(window, name) for window in _RANGE.findall(expr)),
            quantiles=frozenset(float(q) for q in _HISTOGRAM_QUANTILE.findall(expr)),
        )
    return facts


# --- the comparison ----------------------------------------------------------------------------------

ENGINE = {rule.name: engine_facts(rule) for rule in load_rules(DEFAULT_RULES_FILE)}
PROMQL = promql_facts()


def test_both_copies_hold_the_same_alerts() -> None:
    assert sorted(ENGINE) == sorted(PROMQL), (
        f"only in {DEFAULT_RULES_FILE.name}: {sorted(set(ENGINE) - set(PROMQL))}; "
        f"only in {PROM_RULES.name}: {sorted(set(PROMQL) - set(ENGINE))}"
    )


@pytest.mark.parametrize("name", sorted(ENGINE))
def test_the_two_copies_of_a_rule_agree(name: str) -> None:
    engine, promql = ENGINE[name], PROMQL[name]
    problems = []
    for fact in (f.name for f in fields(RuleFacts)):
        ours: Any = getattr(engine, fact)
        theirs: Any = getattr(promql, fact)
        intended = INTENDED.get((name, fact))
        if intended is None and ours != theirs:
            problems.append(f"{fact}: {DEFAULT_RULES_FILE.name} says {ours!r}, {PROM_RULES.name} says {theirs!r}")
        elif intended is not None and (ours, theirs) != (intended.engine, intended.promql):
            problems.append(
                f"{fact}: declared as {intended.engine!r} vs {intended.promql!r} ({intended.reason}), "
                f"but the copies now say {ours!r} vs {theirs!r}: update INTENDED or the rules"
            )
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_every_intended_difference_is_a_difference_of_an_existing_rule() -> None:
    for (name, fact), intended in INTENDED.items():
        assert name in ENGINE, f"INTENDED names an unknown rule {name}"
        assert fact in {f.name for f in fields(RuleFacts)}, f"INTENDED names an unknown fact {fact}"
        assert intended.engine != intended.promql, f"{name}.{fact} is declared different but is the same"
        assert intended.reason, f"{name}.{fact} needs a reason"


def test_the_fact_readers_see_what_the_rules_say() -> None:
    """The readers are exact on a rule of each shape (so an agreeing pair is not two empty readings)."""
    assert ENGINE["VllmTtftHigh"] == RuleFacts(
        severity="warning",
        for_s=300.0,
        runbook_url="deploy/README.md#vllmttfthigh",
        label_keys=frozenset({"target", "model_name", "engine"}),
        thresholds=frozenset({(">", 2.0)}),
        windows_s=frozenset({300.0}),
        quantiles=frozenset({0.95}),
    )
    assert PROMQL["VllmTtftHigh"] == ENGINE["VllmTtftHigh"]
    assert PROMQL["LangfuseScoreDropping"].windows_s == frozenset({3600.0})
    assert PROMQL["LangfuseScoreDropping"].thresholds == frozenset({("<", 0.5)})
    assert ENGINE["CollectorHeartbeatMissing"].thresholds == frozenset({(">", 30.0)})
    assert PROMQL["GpuMemoryNearFull"].thresholds == frozenset({(">=", 0.98)})

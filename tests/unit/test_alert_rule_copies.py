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
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE, Expression, Rule, load_rules, parse_duration
from tests.support import ROOT

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
_MIRRORED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}  # `2 < x` is `x > 2`
_QUANTILE_FUNCTION = re.compile(r"p(\d\d)")  # p50, p95, p99


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        negated = _number(node.operand)
        return None if negated is None else -negated
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
                    if type(op) not in _OPERATORS:
                        continue
                    if (constant := _number(right)) is not None and _number(left) is None:
                        thresholds.add((_OPERATORS[type(op)], constant))
                    elif (constant := _number(left)) is not None and _number(right) is None:
                        thresholds.add((_MIRRORED[_OPERATORS[type(op)]], constant))
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
_NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
_COMPARISON = re.compile(rf"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?{_NUMBER}(?![\w.])")
_COMPARISON_OF_A_CONSTANT = re.compile(rf"(?<![\w.\]]){_NUMBER}\s*(==|!=|>=|<=|>|<)(?!\s*(?:bool\s+)?-?\d)")
_RANGE = re.compile(r"\[([^\]]+)\]")  # a range parse_duration cannot read (1h30m, a subquery) fails loudly
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


def promql_rules() -> list[dict[str, Any]]:
    """Every recording and alerting rule of the PromQL copy, all groups."""
    return [rule for group in yaml.safe_load(PROM_RULES.read_text())["groups"] for rule in group["rules"]]


def promql_condition(expr: str) -> tuple[frozenset[Threshold], frozenset[float], frozenset[float]]:
    """Thresholds, range windows (seconds) and histogram quantiles of a PromQL expression."""
    expr = _STRING.sub('""', expr)  # label values are not numbers of the condition
    thresholds = {(op, float(value)) for op, value in _COMPARISON.findall(expr)}
    thresholds |= {(_MIRRORED[op], float(value)) for value, op in _COMPARISON_OF_A_CONSTANT.findall(expr)}
    windows = {parse_duration(window, expr) for window in _RANGE.findall(expr)}
    quantiles = {float(q) for q in _HISTOGRAM_QUANTILE.findall(expr)}
    return frozenset(thresholds), frozenset(windows), frozenset(quantiles)


def promql_facts() -> dict[str, RuleFacts]:
    """The facts of every alert of the PromQL copy, recording rules inlined into the alerts that use them."""
    rules = promql_rules()
    recorded = {r["record"]: r["expr"] for r in rules if "record" in r}
    label_keys = _promql_label_keys()
    facts: dict[str, RuleFacts] = {}
    for rule in (r for r in rules if "alert" in r):
        name = rule["alert"]
        thresholds, windows, quantiles = promql_condition(_inline_recording_rules(rule["expr"], recorded))
        facts[name] = RuleFacts(
            severity=rule["labels"]["severity"],
            for_s=parse_duration(rule.get("for", "0s"), name),
            runbook_url=rule["annotations"].get("runbook_url", ""),
            label_keys=label_keys.get(name, frozenset()),
            thresholds=thresholds,
            windows_s=windows,
            quantiles=quantiles,
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


@pytest.mark.parametrize(
    ("expr", "thresholds", "windows", "quantiles"),
    [
        ('x{quantile="0.99", le="5"} > 10', {(">", 10.0)}, set(), set()),
        ("0.5 > increase(a[1h]) / increase(b[90s])", {("<", 0.5)}, {3600.0, 90.0}, set()),
        ("histogram_quantile(0.9, rate(h_bucket[5m])) >= bool 2e-3", {(">=", 0.002)}, {300.0}, {0.9}),
        ("count(x == 1) > 0 and y != -1", {("==", 1.0), (">", 0.0), ("!=", -1.0)}, set(), set()),
    ],
)
def test_the_promql_reader_is_exact(
    expr: str, thresholds: set[Threshold], windows: set[float], quantiles: set[float]
) -> None:
    assert promql_condition(expr) == (thresholds, windows, quantiles)


def test_the_engine_reader_mirrors_a_constant_on_the_left() -> None:
    # built without parse_rule: no contract field names, which other work renames
    when = Expression("85 <= reading and -1 < other and 2 > -3", "Mirrored")
    assert engine_facts(Rule(name="Mirrored", event="gpu.host", when=when)).thresholds == {(">=", 85.0), (">", -1.0)}


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


# --- the runbooks quote both copies -------------------------------------------------------------------

RUNBOOKS = ROOT / "deploy" / "README.md"


def _runbook(name: str) -> str:
    sections = re.split(r"^### ", RUNBOOKS.read_text(), flags=re.MULTILINE)
    section = next((s for s in sections if s.startswith(name + "\n")), "")
    assert section, f"{RUNBOOKS.name} has no runbook section ### {name}"
    return " ".join(section.split())


@pytest.mark.parametrize("rule", load_rules(DEFAULT_RULES_FILE), ids=lambda rule: rule.name)
def test_the_runbook_quotes_both_copies_as_they_are(rule: Rule) -> None:
    runbook = _runbook(rule.name)
    prom = next(r for r in promql_rules() if r.get("alert") == rule.name)
    quotes = [f"Severity **{rule.severity}**", f"`{' '.join(prom['expr'].split())}`"]
    if rule.when is not None:
        quotes.append(f"`when: {rule.when.source}`")
    if rule.for_s:
        quotes += [f"`for` {rule.for_s:.0f} s", f"for {prom['for']}"]
    missing = [quote for quote in quotes if quote not in runbook]
    assert not missing, (
        f"{RUNBOOKS.relative_to(ROOT)} ### {rule.name}: update it to quote the rules as they are: {missing}"
    )

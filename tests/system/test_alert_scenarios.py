"""System: every default alert rule fires in the simulator scenario made for it, in a real Prometheus and on the
NATS alert stream, and resolves when the scenario ends.

`inferwatch up --demo` runs with ``INFERWATCH_SIM_CALM=1`` (a baseline in which no default rule fires) and short
collector intervals; the aggregator gets a rules file that sets every ``for`` to 0 s, every ``increase()`` window
to 15 s and CollectorHeartbeatMissing's ``after`` to 4 s; Prometheus gets a copy of ``deploy/prometheus/rules``
with ``for: 0s``, 15 s range windows and a 5 s heartbeat threshold. Every scenario of the simulators' control API
(``INFERWATCH_SIM_CONTROL_URL``) starts at once (they touch different simulators or different knobs);
CollectorHeartbeatMissing has no simulator scenario: the test SIGSTOPs the model-catalog collector (a hung
process, honestly silent) and SIGCONTs it at the end.

One run of the stack (module fixture) collects, per rule, whether its alert (matched by name and the scenario's
labels) fired and resolved in each system; the tests below report per rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from inferwatch.contracts import Event
from inferwatch.contracts.alert import Alert
from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE
from inferwatch.shared.bus import Bus, BusSettings
from tests.support import free_port, wait_until
from tests.support.system import descendant_pids, listed_scenarios, prometheus_query, run_demo, run_prometheus

pytestmark = pytest.mark.slow

RULES = [r["alert"] for r in yaml.safe_load(DEFAULT_RULES_FILE.read_text())["rules"]]
HEARTBEAT = "CollectorHeartbeatMissing"
STOPPED_COLLECTOR = "model-catalog"  # no rule reads its data: stopping it disturbs no other scenario
FIRE_TIMEOUT_S = 45.0
RESOLVE_TIMEOUT_S = 60.0


def _short_windows(rule: dict[str, Any]) -> None:
    """Prometheus' copy: ``for: 0s``, 15 s range windows, a 5 s heartbeat threshold."""
    if "for" in rule:
        rule["for"] = "0s"
    expr = rule["expr"]
    for window in ("[1m]", "[5m]", "[15m]", "[1h]"):
        expr = expr.replace(window, "[15s]")
    if rule.get("alert") == HEARTBEAT:
        expr = expr.replace("> 30", "> 5")
    rule["expr"] = expr


def _aggregator_rules(path: Path) -> None:
    rules = yaml.safe_load(DEFAULT_RULES_FILE.read_text())["rules"]
    for rule in rules:
        if "for" in rule:
            rule["for"] = "0s"
        if "when" in rule:
            rule["when"] = re.sub(r"increase\((.+?), \d+\)", r"increase(\1, 15)", rule["when"])
        if "after" in rule:
            rule["after"] = "4s"
    path.write_text(yaml.safe_dump({"rules": rules}))


@dataclass
class Outcome:
    """What one run of the stack saw, per rule."""

    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # NATS labels to match
    prom_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    before: dict[str, bool] = field(default_factory=dict)  # firing on NATS before its scenario started
    fired_nats: dict[str, bool] = field(default_factory=dict)
    fired_prom: dict[str, bool] = field(default_factory=dict)
    resolved_nats: dict[str, bool] = field(default_factory=dict)
    resolved_prom: dict[str, bool] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    prom_others: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # same name, other labels or state
    missing: list[str] = field(default_factory=list)  # rules with no scenario


def _matches(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def _collector_pid(root: int, service: str) -> int:
    for pid in descendant_pids(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[-3:-1] == [b"run", service.encode()]:
            return pid
    raise AssertionError(f"no `inferwatch run {service}` process under `inferwatch up`")


async def _prom_alerts(client: httpx.AsyncClient, prom: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = (await client.get(prom + "/api/v1/alerts")).json()["data"]["alerts"]
    return alerts


async def _run(nats_url: str, prom: str, control: str, proc_pid: int, out: Outcome) -> None:
    bus = Bus(BusSettings(servers=(nats_url,)), name="alert-scenarios-test")
    await bus.connect()
    received: list[Alert] = []

    async def on_alert(event: Event, _subject: str) -> None:
        if isinstance(event, Alert):
            received.append(event)

    for name in RULES:
        await bus.subscribe(f"inferwatch.v1.alert.{name}.>", on_alert)
    await bus.flush()
    client = httpx.AsyncClient(timeout=5)
    stopped: int | None = None
    try:
        scenarios = await wait_until(
            lambda: listed_scenarios(client, control), timeout=60, what="the scenario control API"
        )
        for s in scenarios:
            out.labels[s["alert"]] = out.prom_labels[s["alert"]] = s["labels"]
        # the baseline: every collector has published (the series the rules read exist in Prometheus)
        for expr in (
            "inferwatch_vllm_up",
            "inferwatch_litellm_up",
            "inferwatch_gpu_temperature_celsius",
            "inferwatch_epp_pool_ready_endpoints",
            "inferwatch_langfuse_info",
        ):
            await wait_until(
                lambda e=expr: prometheus_query(client, prom, e), timeout=60, what=f"{expr} in Prometheus", interval=0.5
            )
        pid = _collector_pid(proc_pid, STOPPED_COLLECTOR)
        instance = f"{STOPPED_COLLECTOR}@{socket.gethostname()}:{pid}"
        out.labels[HEARTBEAT] = out.prom_labels[HEARTBEAT] = {"source": instance}
        out.missing = [r for r in RULES if r not in out.labels]

        def firing_on_nats(name: str) -> set[str]:
            state: dict[str, str] = {}
            for a in received:
                if a.name == name and _matches(a.labels, out.labels[name]):
                    state[a.source] = a.state
            return {fp for fp, st in state.items() if st == "firing"}

        def seen_firing_on_nats(name: str) -> bool:
            return any(
                a.name == name and a.state == "firing" and _matches(a.labels, out.labels[name]) for a in received
            )

        rules = [r for r in RULES if r in out.labels]
        for name in rules:
            out.before[name] = seen_firing_on_nats(name)

        started = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        stopped = pid
        for s in scenarios:
            (await client.post(f"{control}/scenarios/{s['name']}")).raise_for_status()

        async def all_fired() -> bool:
            alerts = await _prom_alerts(client, prom)
            for name in rules:
                if not out.fired_nats.get(name) and seen_firing_on_nats(name):
                    out.fired_nats[name] = True
                    out.timings[f"{name} NATS fired"] = time.monotonic() - started
                if not out.fired_prom.get(name) and any(
                    a["labels"].get("alertname") == name
                    and a["state"] == "firing"
                    and _matches(a["labels"], out.prom_labels[name])
                    for a in alerts
                ):
                    out.fired_prom[name] = True
                    out.timings[f"{name} Prometheus fired"] = time.monotonic() - started
            return all(out.fired_nats.get(n) and out.fired_prom.get(n) for n in rules)

        with contextlib.suppress(AssertionError):  # the per-rule tests name what did not fire
            await wait_until(all_fired, timeout=FIRE_TIMEOUT_S, what="every rule firing", interval=0.5)
        alerts = await _prom_alerts(client, prom)
        for name in rules:  # what Prometheus did have, for the message of a rule that did not fire there
            if not out.fired_prom.get(name):
                out.prom_others[name] = [
                    {**a["labels"], "state": a["state"]} for a in alerts if a["labels"].get("alertname") == name
                ]

        ended = time.monotonic()
        for s in scenarios:
            (await client.delete(f"{control}/scenarios/{s['name']}")).raise_for_status()
        os.kill(pid, signal.SIGCONT)
        stopped = None

        async def all_resolved() -> bool:
            alerts = await _prom_alerts(client, prom)
            for name in rules:
                if not out.resolved_nats.get(name) and out.fired_nats.get(name) and not firing_on_nats(name):
                    out.resolved_nats[name] = True
                    out.timings[f"{name} NATS resolved"] = time.monotonic() - ended
                if (
                    not out.resolved_prom.get(name)
                    and out.fired_prom.get(name)
                    and not any(
                        a["labels"].get("alertname") == name and _matches(a["labels"], out.prom_labels[name])
                        for a in alerts
                    )
                ):
                    out.resolved_prom[name] = True
                    out.timings[f"{name} Prometheus resolved"] = time.monotonic() - ended
            return all(out.resolved_nats.get(n) and out.resolved_prom.get(n) for n in rules)

        with contextlib.suppress(AssertionError):
            await wait_until(all_resolved, timeout=RESOLVE_TIMEOUT_S, what="every rule resolved", interval=0.5)
        out.timings["total"] = time.monotonic() - started
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        await client.aclose()
        await bus.close()


@pytest.fixture(scope="module")
def outcome(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Run the stack once: start every scenario, wait for the alerts, end them, wait for the resolutions."""
    tmp = tmp_path_factory.mktemp("alert-scenarios")
    _aggregator_rules(tmp / "aggregator-rules.yaml")
    agg_port, control_port = free_port(), free_port()
    env = {
        "INFERWATCH_SIM_CALM": "1",
        "INFERWATCH_SIM_CONTROL_PORT": str(control_port),
        "INFERWATCH_AGGREGATOR_RULES_FILE": str(tmp / "aggregator-rules.yaml"),
        "INFERWATCH_HEARTBEAT_INTERVAL_S": "1",
        "INFERWATCH_LITELLM_INTERVAL_S": "1",
        "INFERWATCH_EPP_INTERVAL_S": "1",
        "INFERWATCH_GPU_INTERVAL_S": "1",
        "INFERWATCH_LANGFUSE_INTERVAL_S": "2",
        "INFERWATCH_LANGFUSE_BUCKET_S": "2",
        "INFERWATCH_LANGFUSE_SETTLE_S": "3",
        "INFERWATCH_LANGFUSE_RECHECK_S": "12",
    }
    with run_prometheus(tmp, agg_port, _short_windows) as prom, run_demo(nats_url, agg_port, env) as proc:
        out = Outcome()
        asyncio.run(_run(nats_url, prom, f"http://127.0.0.1:{control_port}", proc.pid, out))
        print(f"\nalert scenarios: {out.timings.get('total', 0):.0f} s from the first scenario to the last check")
        for rule in RULES:
            print(f"  {rule:<28} {_seen(out, rule)}")
        yield out


def test_every_rule_has_a_scenario(outcome: Outcome) -> None:
    assert outcome.missing == []


@pytest.mark.parametrize("rule", RULES)
def test_rule_quiet_before_its_scenario(outcome: Outcome, rule: str) -> None:
    assert outcome.before.get(rule) is False, f"{rule} fired on NATS before its scenario started"


def _seen(outcome: Outcome, rule: str) -> str:
    """When the rule fired and resolved in each system (the fixture prints it; a failing test's message repeats it,
    as pytest shows the fixture's output only beside the first test)."""
    seen = [
        f"{what} {outcome.timings[f'{rule} {what}']:.1f}s"
        for what in ("Prometheus fired", "NATS fired", "Prometheus resolved", "NATS resolved")
        if f"{rule} {what}" in outcome.timings
    ]
    return ", ".join(seen) or "nothing"


@pytest.mark.parametrize("rule", RULES)
def test_rule_fires_in_prometheus(outcome: Outcome, rule: str) -> None:
    assert outcome.fired_prom.get(rule), (
        f"{rule} {outcome.prom_labels.get(rule)} never firing in Prometheus; it had: {outcome.prom_others.get(rule)}"
        f"; seen: {_seen(outcome, rule)}"
    )


@pytest.mark.parametrize("rule", RULES)
def test_rule_fires_on_nats(outcome: Outcome, rule: str) -> None:
    assert outcome.fired_nats.get(rule), (
        f"{rule} {outcome.labels.get(rule)} never firing on NATS; seen: {_seen(outcome, rule)}"
    )


@pytest.mark.parametrize("rule", RULES)
def test_rule_resolves_in_prometheus(outcome: Outcome, rule: str) -> None:
    assert outcome.resolved_prom.get(rule), (
        f"{rule} still active in Prometheus after its scenario ended; seen: {_seen(outcome, rule)}"
    )


@pytest.mark.parametrize("rule", RULES)
def test_rule_resolves_on_nats(outcome: Outcome, rule: str) -> None:
    assert outcome.resolved_nats.get(rule), (
        f"{rule} not resolved on NATS after its scenario ended; seen: {_seen(outcome, rule)}"
    )

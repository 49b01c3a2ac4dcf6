"""deploy/ through the real tools: promtool (rules, unit tests, config, dashboard PromQL) and amtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml  # type: ignore[import-untyped]

from tests.support import require_tool
from tests.support.deploy import DEPLOY, PROM, RULES, dashboard_queries


def run_tool(*args: str | Path) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


# --- Prometheus ------------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    count = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert count >= 23
    assert f"SUCCESS: {count} rules found" in run_tool(promtool, "check", "rules", RULES)


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    assert "SUCCESS" in run_tool(promtool, "test", "rules", PROM / "tests" / "inferwatch.test.yml")


def test_promtool_checks_the_generated_slo_rules() -> None:
    promtool = require_tool("promtool")
    assert "SUCCESS" in run_tool(promtool, "check", "rules", PROM / "rules" / "slo.rules.yml")


def test_promtool_unit_tests_of_the_slo_rules_pass() -> None:
    """Each burn-rate pair of each shipped SLO fires at 1.1x its factor and not at 0.9x (scripts/slo_rules.py)."""
    promtool = require_tool("promtool")
    assert "SUCCESS" in run_tool(promtool, "test", "rules", PROM / "tests" / "slo.test.yml")


def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    assert "SUCCESS" in run_tool(promtool, "check", "config", "--syntax-only", PROM / "prometheus.yml")


# --- Alertmanager -----------------------------------------------------------------------------------


def test_alertmanager_config_is_valid() -> None:
    amtool = require_tool("amtool")
    run_tool(amtool, "check-config", DEPLOY / "alertmanager" / "alertmanager.yml")


# --- Grafana ----------------------------------------------------------------------------------------


def test_promql_in_dashboards_parses(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    # promtool has no expression checker; load every query as a recording rule and let `check rules` parse it
    exprs = sorted(
        {
            expr.replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$host", ".*")
            .replace("$model", ".*")
            .replace("$container", ".*")
            for _, expr in dashboard_queries()
            if not expr.startswith("label_values(")
        }
    )
    rules = {
        "groups": [
            {"name": "dashboards", "rules": [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    run_tool(promtool, "check", "rules", path)

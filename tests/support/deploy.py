"""Facts about deploy/ the deploy tests share: its paths, the dashboards' queries, the NATS users."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml  # type: ignore[import-untyped]

from tests.support import ROOT

DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
RULES = PROM / "rules" / "inferwatch.rules.yml"
NATS_CONF = DEPLOY / "nats" / "nats-server.conf"
NATS_USERS = re.findall(r"\{user: ([a-z-]+), password: \$(NATS_PASSWORD_[A-Z_]+)", NATS_CONF.read_text())
"""(user, password variable) of every user in the NATS server config."""


def dashboards() -> dict[str, dict[str, Any]]:
    """The committed Grafana dashboards by file name."""
    return {p.name: json.loads(p.read_text()) for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard panel and variable, and of every shipped Prometheus rule."""
    out = []
    for name, board in dashboards().items():
        out += [(name, t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
        out += [(name, v["definition"]) for v in board["templating"]["list"] if "definition" in v]
    for rule in (r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]):
        out.append(("prometheus rules", rule["expr"]))
    return out

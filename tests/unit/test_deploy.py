"""deploy/: generated dashboards, metric names that exist, docker-compose.yml against the Compose specification
schema, Kustomize inputs in sync (promtool and amtool run in tests/integration/test_deploy_promtool.py)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from inferwatch.services import SERVICES
from inferwatch.services.aggregator import app as aggregator_app
from inferwatch.services.aggregator import slo as aggregator_slo
from inferwatch.services.aggregator import state as aggregator_state
from inferwatch.services.aggregator.domains import all_families
from inferwatch.services.aggregator.render import Family
from tests import support
from tests.support import ROOT
from tests.support.deploy import DEPLOY, PROM, RULES, dashboard_queries, dashboards

FIXTURES = support.FIXTURES / "deploy"
METRIC = re.compile(r"\binferwatch_[a-zA-Z0-9_]+")


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def known_metric_names() -> set[str]:
    """Every sample name the aggregator may export, plus the pending list (collectors not landed yet)."""
    families: list[Family] = list(all_families())
    for module in (aggregator_app, aggregator_state, aggregator_slo):
        families += [v for v in vars(module).values() if isinstance(v, Family)]
    names: set[str] = set()
    for f in families:
        names.add(f.name)
        if f.type == "counter":
            names.add(f.name + "_total")
        if f.type == "histogram":
            names |= {f.name + "_bucket", f.name + "_sum", f.name + "_count"}
    return names | pending_metric_names() | recorded_metric_names()


def recorded_metric_names() -> set[str]:
    """The metric part of every recording rule's name (``level:metric:operations``): the rules define these."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"].split(":")[1] for group in groups for rule in group["rules"] if "record" in rule}


def pending_metric_names() -> set[str]:
    lines = (DEPLOY / "pending-metrics.txt").read_text().splitlines()
    base = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    return base | {n + s for n in base for s in ("_total", "_bucket", "_sum", "_count")}


# --- Prometheus ------------------------------------------------------------------------------------


def _prometheus_alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_every_alert_rule_has_a_promtool_unit_test_that_expects_it_to_fire() -> None:
    tests = yaml.safe_load((PROM / "tests" / "inferwatch.test.yml").read_text())["tests"]
    fired = {t["alertname"] for group in tests for t in group.get("alert_rule_test", []) if t["exp_alerts"]}
    assert fired == set(_prometheus_alerts())


def test_runbooks_exist_in_the_readme() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for name in _prometheus_alerts():
        assert f'<a id="{name.lower()}"></a>' in readme, f"no runbook anchor for {name}"


# --- Grafana ----------------------------------------------------------------------------------------


def _generator() -> ModuleType:
    return _load(DEPLOY / "grafana" / "generate.py", "inferwatch_grafana_generate")


def test_regenerating_dashboards_gives_the_committed_json() -> None:
    rendered = _generator().render_all()
    committed = {p.name: p.read_text() for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert set(rendered) == set(committed)
    for name, text in rendered.items():
        assert text == committed[name], f"{name} is stale: run python deploy/grafana/generate.py"


def _without_empties(node: Any) -> Any:
    """``node`` without ``None`` and ``{}`` values: the SDK encodes an unset field as ``null`` (or ``{}``), JSON
    written without it means the same."""
    if isinstance(node, dict):
        pruned = {k: _without_empties(v) for k, v in node.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {}}
    if isinstance(node, list):
        return [_without_empties(v) for v in node]
    return node


def _declared_within(declared: Any, typed: Any, path: str = "") -> list[str]:
    """Where ``typed`` lacks or changes something of ``declared``, at every depth (it may add defaults)."""
    if isinstance(declared, dict):
        if not isinstance(typed, dict):
            return [path]
        return [
            p
            for k, v in declared.items()
            for p in (
                [f"{path}/{k} (unknown to the SDK's types)"]
                if k not in typed
                else _declared_within(v, typed[k], f"{path}/{k}")
            )
        ]
    if isinstance(declared, list):
        if not isinstance(typed, list) or len(typed) != len(declared):
            return [path]
        return [
            p
            for i, (d, t) in enumerate(zip(declared, typed, strict=True))
            for p in _declared_within(d, t, f"{path}[{i}]")
        ]
    return [] if declared == typed else [f"{path}: {declared!r} became {typed!r}"]


@pytest.mark.parametrize("name", sorted(p.stem for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")))
def test_each_dashboard_is_a_valid_grafana_dashboard_by_the_sdks_types(name: str) -> None:
    """Every committed dashboard decodes into grafana-foundation-sdk's typed Dashboard (panels and their options
    by their plugin's types, queries as Prometheus dataqueries) and encodes back with every field it has, unchanged
    (the SDK may add its defaults); enumerated fields hold values of the SDK's enums."""
    from grafana_foundation_sdk.cog import runtime
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard as model
    from grafana_foundation_sdk.models import prometheus

    register_default_plugins()
    board = json.loads((DEPLOY / "grafana" / "dashboards" / f"{name}.json").read_text())
    typed = model.Dashboard.from_json(json.loads(json.dumps(board)))
    again = json.loads(json.dumps(typed, cls=JSONEncoder))
    assert _declared_within(_without_empties(board), again) == [], name

    assert board["graphTooltip"] in set(model.DashboardCursorSync)
    for variable in board["templating"]["list"]:
        assert variable["type"] in set(model.VariableType)
        if "refresh" in variable:
            assert variable["refresh"] in set(model.VariableRefresh)
        if "sort" in variable:
            assert variable["sort"] in set(model.VariableSort)
    for panel, decoded in zip(board["panels"], typed.panels or [], strict=True):
        if panel["type"] == "row":
            assert isinstance(decoded, model.RowPanel)
            continue
        config = runtime.panelcfg_config(panel["type"])
        assert config is not None, f"{name}: unknown panel type {panel['type']}"
        assert isinstance(decoded, model.Panel)
        assert config.options_from_json_hook is not None
        assert type(decoded.options) is type(config.options_from_json_hook({})), f"{name}: {panel['title']}"
        assert decoded.targets, f"{name}: {panel['title']} has no query"
        for target in decoded.targets:
            assert isinstance(target, prometheus.Dataquery), f"{name}: {panel['title']}: not a Prometheus query"
            assert target.format_val is None or target.format_val in set(prometheus.PromQueryFormat)


def test_the_dashboard_check_names_what_the_sdks_types_do_not_know() -> None:
    """The check above can fail: a misspelt option and a field Grafana's model has not are both named."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard as model

    register_default_plugins()
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "model-catalog.json").read_text())
    table = next(p for p in board["panels"] if p["type"] == "table")
    table["options"]["showHeaders"] = True  # the real one is showHeader
    table["legendz"] = {"show": True}
    again = json.loads(json.dumps(model.Dashboard.from_json(json.loads(json.dumps(board))), cls=JSONEncoder))
    index = board["panels"].index(table)
    assert sorted(_declared_within(_without_empties(board), again)) == [
        f"/panels[{index}]/legendz (unknown to the SDK's types)",
        f"/panels[{index}]/options/showHeaders (unknown to the SDK's types)",
    ]


def test_the_six_dashboards_with_variables_and_panel_help() -> None:
    boards = dashboards()
    assert {b["title"] for b in boards.values()} == {
        "LiteLLM status",
        "vLLM Docker status",
        "Model catalog",
        "Langfuse analytics",
        "Performance comparison",
        "EPP",
    }
    for name, board in boards.items():
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"host", "model", "container"} <= variables, name
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) >= 5, name
        for panel in panels:
            assert panel["description"], f"{name}: {panel['title']} has no description"
            assert panel["targets"], f"{name}: {panel['title']} has no query"
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_every_referenced_metric_exists() -> None:
    known = known_metric_names()
    missing = {(where, m) for where, expr in dashboard_queries() for m in METRIC.findall(expr) if m not in known}
    assert not missing, f"unknown metric names (not in all_families() nor deploy/pending-metrics.txt): {missing}"


def test_pending_names_are_not_also_landed_families() -> None:
    """When a collector lands its family, the pending line is stale (it may hide a renamed metric)."""
    landed = {f.name for f in all_families()}
    stale = pending_metric_names() & landed
    assert not stale, f"remove from deploy/pending-metrics.txt (landed): {sorted(stale)}"


# --- docker-compose.yml and Dockerfile --------------------------------------------------------------


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    # compose_spec.json as shipped in the docker-compose 1.29.2 wheel (the Compose Specification's schema)
    schema = json.loads((FIXTURES / "compose-spec.schema.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert not errors, "\n".join(errors)


def test_compose_services_and_isolation() -> None:
    services = _compose()["services"]
    expected = {spec.name for spec in SERVICES} | {"nats", "demo", "prometheus", "alertmanager", "grafana"}
    assert expected <= set(services)
    for name, svc in services.items():
        mounts = svc.get("volumes", [])
        socket = [m for m in mounts if "docker.sock" in m]
        if name == "docker-watcher":
            assert socket == ["${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock:ro"]
        else:
            assert not socket, f"{name} must not see the Docker socket"
        if svc.get("image") == "inferwatch:latest" and name != "demo":
            assert svc["command"] == ["run", name]
            assert svc["environment"]["NATS_USER"] == name
    assert services["gpu-agent"]["runtime"] == "nvidia"
    assert services["demo"]["profiles"] == ["demo"]
    assert services["demo"]["command"] == ["up", "--demo"]
    assert "-c" in services["nats"]["command"]


def test_dockerfile_runs_any_service_by_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["inferwatch"]' in text
    assert 'CMD ["run", "aggregator"]' in text


# --- Kubernetes ------------------------------------------------------------------------------------


def _k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name not in ("kustomization.yaml", "nats-values.yaml"):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kustomization_lists_existing_files_and_labels_dashboards() -> None:
    k8s = DEPLOY / "k8s"
    kust = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    for resource in kust["resources"]:
        assert (k8s / resource).is_file(), resource
    generators = kust["configMapGenerator"]
    assert len(generators) == 6
    for gen in generators:
        assert gen["options"]["labels"] == {"grafana_dashboard": "1"}
        for file in gen["files"]:
            assert (k8s / file).is_file(), file


def _sync() -> ModuleType:
    return _load(DEPLOY / "k8s" / "sync.py", "inferwatch_k8s_sync")


def test_k8s_generated_inputs_are_current() -> None:
    sync = _sync()
    stale = "is stale: run python deploy/k8s/sync.py"
    assert (DEPLOY / "k8s" / "prometheusrule.yaml").read_text() == sync.prometheus_rule(), (
        f"prometheusrule.yaml {stale}"
    )
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        assert (DEPLOY / "k8s" / "dashboards" / path.name).read_text() == path.read_text(), f"{path.name} {stale}"


def test_deploy_files_match_the_service_registry() -> None:
    mismatches = _sync().registry_mismatches()
    assert not mismatches, "deploy/ disagrees with inferwatch.services.SERVICES; fix by hand:\n" + "\n".join(mismatches)


def test_the_registry_check_names_each_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong port, a loopback bind and a stale scrape target each give one line naming the fix."""
    sync = _sync()
    compose = (ROOT / "docker-compose.yml").read_text()
    compose = compose.replace('INFERWATCH_VLLM_HTTP_PORT: "9752"', 'INFERWATCH_VLLM_HTTP_PORT: "9999"')
    compose = compose.replace("INFERWATCH_GPU_HTTP_HOST: 0.0.0.0", "INFERWATCH_GPU_HTTP_HOST: 127.0.0.1")
    prometheus = (PROM / "prometheus.yml").read_text().replace("aggregator:9750", "aggregator:9751")
    (tmp_path / "docker-compose.yml").write_text(compose)
    (tmp_path / "prometheus.yml").write_text(prometheus)
    monkeypatch.setattr(sync, "COMPOSE", tmp_path / "docker-compose.yml")
    monkeypatch.setattr(sync, "PROMETHEUS_CONFIG", tmp_path / "prometheus.yml")
    assert sync.registry_mismatches() == [
        "docker-compose.yml: vllm-scraper: set INFERWATCH_VLLM_HTTP_PORT to '9752', the port in "
        "inferwatch.services.SERVICES (is '9999')",
        "docker-compose.yml: gpu-agent: set INFERWATCH_GPU_HTTP_HOST to '0.0.0.0', all interfaces: "
        "a container's loopback hides it (is '127.0.0.1')",
        "deploy/prometheus/prometheus.yml: job inferwatch-aggregator: scrape aggregator:9750 (is aggregator:9751)",
    ]


def test_k8s_kinds() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in _k8s_docs()}
    assert ("DaemonSet", "gpu-agent") in kinds
    assert ("ServiceMonitor", "inferwatch-aggregator") in kinds
    assert ("PrometheusRule", "inferwatch") in kinds
    assert ("ClusterRole", "inferwatch-epp-scraper") in kinds
    workloads = {name for kind, name in kinds if kind in ("Deployment", "DaemonSet")}
    assert {spec.name for spec in SERVICES} <= workloads
    epp = next(d for d in _k8s_docs() if d["kind"] == "Deployment" and d["metadata"]["name"] == "epp-scraper")
    assert epp["spec"]["template"]["spec"]["serviceAccountName"] == "epp-scraper"
    role = next(d for d in _k8s_docs() if d["kind"] == "ClusterRole")
    assert {"nonResourceURLs": ["/metrics"], "verbs": ["get"]} in role["rules"]


def test_nats_helm_values_match_the_server_config() -> None:
    values = yaml.safe_load((DEPLOY / "k8s" / "nats-values.yaml").read_text())
    assert values["config"]["cluster"]["replicas"] == 3
    assert values["config"]["jetstream"]["enabled"] is True
    conf = (DEPLOY / "nats" / "nats-server.conf").read_text()
    for user in values["config"]["merge"]["authorization"]["users"]:
        block = conf[conf.index(f"{{user: {user['user']},") :]
        publish_line = block[block.index("publish:") :].splitlines()[0]
        allowed = re.findall(r'"([^"]+)"', publish_line)
        assert allowed == user["permissions"]["publish"]["allow"], user["user"]

"""The system tier's processes: `inferwatch up --demo`, a Prometheus loaded with the shipped rules, and the
process tree a test must find empty when it is done."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import ROOT, free_port, require_tool


def descendant_pids(pid: int) -> set[int]:
    """Every descendant PID of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def fast_rules(rule: dict[str, Any]) -> None:
    """The test copy of a rule: its ``for`` duration set to 0 s."""
    if "for" in rule:
        rule["for"] = "0s"


@contextlib.contextmanager
def run_prometheus(
    tmp_path: Path,
    agg_port: int,
    rewrite: Callable[[dict[str, Any]], None] = fast_rules,
    extra_groups: list[dict[str, Any]] | None = None,
) -> Iterator[str]:
    """A Prometheus (1 s scrape and evaluation) scraping ``127.0.0.1:agg_port``, loaded with a copy of the shipped
    rules that ``rewrite`` changed rule by rule, plus ``extra_groups`` as they are (generated SLO rules); yields
    its URL."""
    binary = require_tool("prometheus")
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules" / "inferwatch.rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rewrite(rule)
    rules["groups"] += extra_groups or []
    for group in rules["groups"]:
        group["interval"] = "1s"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": "inferwatch-aggregator",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{agg_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not _answers(url + "/-/ready"):
            assert proc.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, "prometheus not ready after 20 s"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def run_demo(
    nats_url: str, agg_port: int, extra_env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`inferwatch up --demo` on ``nats_url``, its aggregator on ``agg_port``; yields the process."""
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_INTERVAL_S": "1",
        "INFERWATCH_LOG_LEVEL": "warning",
        "INFERWATCH_AGGREGATOR_ALERTS_TICK_S": "0.2",
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "up", "--demo", "--port", str(agg_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def prometheus_query(client: httpx.AsyncClient, prom: str, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant query on the Prometheus at ``prom``; asserts the query was accepted."""
    body = (await client.get(prom + "/api/v1/query", params={"query": expr})).json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def listed_scenarios(client: httpx.AsyncClient, control: str) -> list[dict[str, Any]] | None:
    """The demo's scenarios as its control API at ``control`` lists them; None while it does not answer yet."""
    try:
        r = await client.get(control + "/scenarios")
    except httpx.HTTPError:
        return None
    scenarios: list[dict[str, Any]] = r.json()["scenarios"]
    return scenarios

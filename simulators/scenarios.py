"""Named alert scenarios of the demo simulators, switchable at runtime over a small HTTP API.

Each scenario drives one default alert rule (``services/aggregator/rules/default.yaml``) by changing the state of
one simulator: a vLLM server whose ``/metrics`` answers 500, a LiteLLM deployment that fails, a GPU that runs hot…
``python -m inferwatch.simulators`` serves the registry of every simulator that declares scenarios and writes its
base URL to the demo environment as ``INFERWATCH_SIM_CONTROL_URL``:

* ``GET /scenarios``: every scenario (name, alert, description, active, labels the alert carries);
* ``POST /scenarios/<name>``: start one (idempotent);
* ``DELETE /scenarios/<name>``: end it (idempotent).

``labels`` are the labels the alert has both in the aggregator and in Prometheus, so a client can tell the
scenario's alert from others of the same name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CALM_ENV = "INFERWATCH_SIM_CALM"
"""Set to ``1``: the simulators start from a baseline in which no default alert rule fires (no random container
kills, steady vLLM traffic without bursts, a healthy LiteLLM, Langfuse data without errors or low scores, a fast
EPP), so scenarios are the only source of alerts."""


@dataclass
class Scenario:
    """One named scenario.

    Attributes:
        name: URL-safe name (``vllm_target_down``).
        alert: the default rule it makes fire.
        description: what changes in the simulator.
        start: puts the simulator into the scenario.
        stop: puts it back.
        labels: labels the scenario's alert carries (a subset of its labels).
    """

    name: str
    alert: str
    description: str
    start: Callable[[], None]
    stop: Callable[[], None]
    labels: dict[str, str] = field(default_factory=dict)
    active: bool = False
    since: float | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON the API returns for this scenario."""
        return {
            "name": self.name,
            "alert": self.alert,
            "description": self.description,
            "active": self.active,
            "since": self.since,
            "labels": dict(self.labels),
        }


class ScenarioRegistry:
    """Scenarios by name, and the aiohttp application that switches them."""

    def __init__(self) -> None:
        self.scenarios: dict[str, Scenario] = {}

    def add(self, scenario: Scenario) -> None:
        """Register one scenario (names are unique)."""
        if scenario.name in self.scenarios:
            raise ValueError(f"duplicate scenario {scenario.name!r}")
        self.scenarios[scenario.name] = scenario

    def start(self, name: str) -> Scenario:
        """Start ``name`` (no-op when active). Raises KeyError for an unknown name."""
        scenario = self.scenarios[name]
        if not scenario.active:
            scenario.start()
            scenario.active, scenario.since = True, time.time()
        return scenario

    def stop(self, name: str) -> Scenario:
        """End ``name`` (no-op when inactive). Raises KeyError for an unknown name."""
        scenario = self.scenarios[name]
        if scenario.active:
            scenario.stop()
            scenario.active, scenario.since = False, None
        return scenario

    def stop_all(self) -> None:
        """End every active scenario."""
        for name in list(self.scenarios):
            self.stop(name)

    def app(self) -> web.Application:
        """``GET /scenarios``, ``POST /scenarios/{name}``, ``DELETE /scenarios/{name}``."""

        async def listing(_request: web.Request) -> web.Response:
            return web.json_response({"scenarios": [s.describe() for s in self.scenarios.values()]})

        def switch(action: Callable[[str], Scenario]) -> Callable[[web.Request], Any]:
            async def handler(request: web.Request) -> web.Response:
                name = request.match_info["name"]
                if name not in self.scenarios:
                    return web.json_response(
                        {"error": f"unknown scenario {name!r}", "known": sorted(self.scenarios)}, status=404
                    )
                return web.json_response(action(name).describe())

            return handler

        app = web.Application()
        app.router.add_get("/scenarios", listing)
        app.router.add_post("/scenarios/{name}", switch(self.start))
        app.router.add_delete("/scenarios/{name}", switch(self.stop))
        return app


async def serve(registry: ScenarioRegistry, host: str = "127.0.0.1", port: int = 0) -> tuple[str, web.AppRunner]:
    """Serve the registry's API; returns its base URL and the runner."""
    runner = web.AppRunner(registry.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return f"http://{host}:{bound}", runner

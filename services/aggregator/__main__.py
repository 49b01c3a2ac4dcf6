"""``python -m services.aggregator``: events → Prometheus ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from services.aggregator.alerting import AlertingConfig
from services.aggregator.app import Aggregator, run
from services.aggregator.config import DEFAULT_PORT, AggregatorConfig
from services.aggregator.status_page import status_routes
from shared.service import ServiceContext, main_entry

_aggregators: dict[str, Aggregator] = {}


def _aggregator(ctx: ServiceContext) -> Aggregator:
    if ctx.instance not in _aggregators:
        _aggregators[ctx.instance] = Aggregator(AggregatorConfig.from_env(ctx.env), ctx,
                                                  AlertingConfig.from_env(ctx.env))
    return _aggregators[ctx.instance]


def routes(ctx: ServiceContext) -> list[web.RouteDef]:
    """The aggregator's ``/metrics`` replaces the default service one; ``/`` is the status page."""
    aggregator = _aggregator(ctx)
    return [web.get("/metrics", aggregator.metrics_handler), *status_routes(aggregator)]


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, _aggregator(ctx))


if __name__ == "__main__":
    main_entry("aggregator", main, default_port=DEFAULT_PORT, routes=routes)

"""Every inferwatch service, declared once.

The CLI (``inferwatch run``/``up``), the README's tables, ``deploy/`` and the tests read this
registry; nothing else lists services, ports or environment prefixes. Each entry names its settings
type and the module that runs the service (``run(ctx, config)``, or ``build(ctx, config)`` for a service
with HTTP routes of its own), imported only when that service runs. Adding a collector is one folder
under ``services/`` and one entry here.
"""

from __future__ import annotations

from inferwatch.services.aggregator.config import AggregatorConfig
from inferwatch.services.docker_watcher.config import DockerWatcherConfig
from inferwatch.services.epp_scraper.config import EppScraperConfig
from inferwatch.services.gpu_agent.config import GpuAgentConfig
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig
from inferwatch.services.litellm_poller.config import LitellmPollerConfig
from inferwatch.services.model_catalog.config import ModelCatalogConfig
from inferwatch.services.vllm_scraper.config import VllmScraperConfig
from inferwatch.shared.service import ServiceSpec

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "aggregator",
        9750,
        AggregatorConfig,
        "inferwatch.services.aggregator.app",
        "events -> Prometheus /metrics, alerts, status page",
    ),
    ServiceSpec(
        "docker-watcher",
        9751,
        DockerWatcherConfig,
        "inferwatch.services.docker_watcher.app",
        "containers and their lifecycle from the Docker Engine; discovers vLLM targets",
    ),
    ServiceSpec(
        "vllm-scraper",
        9752,
        VllmScraperConfig,
        "inferwatch.services.vllm_scraper.app",
        "every vLLM instance's /metrics, /health, /v1/models, /version",
    ),
    ServiceSpec(
        "litellm-poller",
        9753,
        LitellmPollerConfig,
        "inferwatch.services.litellm_poller.app",
        "LiteLLM proxies: health, routes, usage, spend, fallbacks",
    ),
    ServiceSpec(
        "langfuse-ingester",
        9754,
        LangfuseIngesterConfig,
        "inferwatch.services.langfuse_ingester.app",
        "Langfuse analytics (API or database), incremental and exact",
    ),
    ServiceSpec(
        "epp-scraper",
        9755,
        EppScraperConfig,
        "inferwatch.services.epp_scraper.app",
        "the llm-d endpoint picker's /metrics",
    ),
    ServiceSpec(
        "gpu-agent",
        9756,
        GpuAgentConfig,
        "inferwatch.services.gpu_agent.app",
        "NVML readings per GPU, GPU processes mapped to containers",
    ),
    ServiceSpec(
        "model-catalog",
        9757,
        ModelCatalogConfig,
        "inferwatch.services.model_catalog.app",
        "every model seen, merged and enriched from the Hugging Face API",
    ),
)

BY_NAME: dict[str, ServiceSpec] = {spec.name: spec for spec in SERVICES}


def spec(name: str) -> ServiceSpec:
    """The service called ``name``.

    Raises:
        KeyError: no such service (the message lists the known ones).
    """
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r}; one of: {', '.join(BY_NAME)}") from None

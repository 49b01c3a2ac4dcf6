"""gpu-agent over the fake NVML end to end via NATS to the aggregator."""

from __future__ import annotations

import re
import uuid

import httpx
import pynvml  # type: ignore[import-untyped]

from tests.support import get_text, running_service, wait_until


async def test_agent_end_to_end_through_nats_to_aggregator(nats_url: str) -> None:
    host = f"gpu-test-{uuid.uuid4().hex[:6]}"
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_GPU_NVML": "inferwatch.simulators.nvml:from_env",
        "INFERWATCH_SIM_NVML": "3:thermal",
        "INFERWATCH_GPU_HOST": host,
        "INFERWATCH_GPU_INTERVAL_S": "0.5",
        "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2",
    }
    async with (
        running_service("aggregator", env) as agg,
        running_service("gpu-agent", env) as agent,
    ):

        async def body_with(pattern: str) -> str | None:
            body = await get_text(agg.url + "/metrics")
            return body if re.search(pattern, body) else None

        body = await wait_until(
            lambda: body_with(
                rf'inferwatch_gpu_throttle_reason\{{host="{host}",gpu="1",[^}}]*reason="sw_thermal_slowdown"\}} 1'
            ),
            timeout=10,
            what="thermal throttling of GPU 1 in the aggregator",
        )
        assert re.search(rf'inferwatch_gpu_host_info\{{host="{host}",driver_version="550.54.15"', body)
        own = await get_text(agent.url + "/metrics")
        assert "inferwatch_gpu_nvml_available 1.0" in own


async def test_agent_without_nvml_stays_up_and_says_why(nats_url: str) -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        return  # a host with NVIDIA drivers: absence cannot be exercised with the real library
    env = {"NATS_URL": nats_url, "INFERWATCH_GPU_INTERVAL_S": "0.5", "INFERWATCH_GPU_HOST": "no-gpu"}
    async with running_service("gpu-agent", env, wait_ready=False) as agent:

        async def not_ready() -> str | None:
            async with httpx.AsyncClient(timeout=2) as client:
                r = await client.get(agent.url + "/readyz")
            return r.text if r.status_code == 503 and "NVML" in r.text else None

        reason = await wait_until(not_ready, timeout=10, what="/readyz explaining NVML absence")
        assert "library_not_found" in reason or "driver_not_loaded" in reason
        metrics = await get_text(agent.url + "/metrics")
        assert "inferwatch_gpu_nvml_available 0.0" in metrics
        assert (await get_text(agent.url + "/healthz")) is not None  # alive

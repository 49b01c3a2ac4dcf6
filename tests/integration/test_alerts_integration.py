"""The alert stream end to end: a snapshot on NATS → an Alert on ``inferwatch.v1.alert.<name>.<fp>`` within 1 s,
and forwarded to a real Alertmanager (Debian ``prometheus-alertmanager``) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from inferwatch.contracts import Event
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.subjects import subject_for
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from tests.support import answers, free_port, get_text, require_tool, running_service, wait_until
from tests.support.aggregator import FAST_RULES


def snapshot(up: bool) -> VllmInstanceSnapshot:
    return VllmInstanceSnapshot(
        source="http://vllm-it:8000",
        observed_at=time.time(),
        collector="test",
        interval_s=5.0,
        up=up,
        error="" if up else "timeout",
    )


@contextlib.contextmanager
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on a free loopback port."""
    binary = require_tool("prometheus-alertmanager", "alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: blackhole, group_wait: 0s}\nreceivers: [{name: blackhole}]\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def _am_alerts(url: str, active: bool = True) -> list[dict[str, object]]:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            r = await client.get(
                url + "/api/v2/alerts",
                params={
                    "active": str(active).lower(),
                    "silenced": "false",
                    "inhibited": "false",
                    "unprocessed": "true",
                },
            )
            return r.json() if r.status_code == 200 else []
    except httpx.HTTPError:
        return []


async def test_alert_on_nats_within_one_second_and_in_alertmanager(nats_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(FAST_RULES)
    with alertmanager(tmp_path) as am_url:
        await wait_until(lambda: answers(am_url + "/-/ready"), timeout=15, what="alertmanager ready")
        env = {
            "NATS_URL": nats_url,
            "INFERWATCH_AGGREGATOR_RULES_FILE": str(rules),
            "INFERWATCH_AGGREGATOR_ALERTMANAGER_URL": am_url,
            "INFERWATCH_AGGREGATOR_ALERTS_TICK_S": "0.2",
        }
        async with running_service("aggregator", env) as svc:
            bus = Bus(BusSettings(servers=(nats_url,)), name="test-alerts")
            await bus.connect()
            received: list[tuple[float, str, Alert]] = []

            async def on_alert(event: Event, subject: str) -> None:
                assert isinstance(event, Alert)
                received.append((time.monotonic(), subject, event))

            await bus.subscribe("inferwatch.v1.alert.VllmTargetDown.>", on_alert)
            await bus.flush()
            try:
                await bus.publish(snapshot(up=False))
                await wait_until(lambda: received, timeout=5, what="alert on NATS")
                _, subject, alert = received[0]  # how fast: bench/bench_alert_latency.py
                assert alert.state == "firing"
                assert alert.labels["target"] == "http://vllm-it:8000"
                assert subject == subject_for(alert)
                assert subject.startswith("inferwatch.v1.alert.VllmTargetDown.")
                assert alert.annotations["runbook_url"].endswith("#vllmtargetdown")

                def in_am() -> object:
                    return _named(am_url, "VllmTargetDown", active=True)

                found = await wait_until(in_am, timeout=5, what="alert in Alertmanager")
                assert found["labels"]["severity"] == "critical"
                assert found["annotations"]["summary"] == "vLLM target http://vllm-it:8000 is down"

                # the status page's view
                status = json.loads(await get_text(svc.url + "/api/status"))
                assert any(a["name"] == "VllmTargetDown" for a in status["alerts"])

                # a second identical snapshot: no duplicate on NATS
                await bus.publish(snapshot(up=False))
                await asyncio.sleep(0.5)
                assert len(received) == 1

                await bus.publish(snapshot(up=True))
                await wait_until(lambda: len(received) == 2, timeout=5, what="resolved on NATS")
                resolved = received[1][2]
                assert resolved.state == "resolved"
                assert resolved.source == alert.source
                assert resolved.ends_at >= alert.starts_at

                async def gone_from_am() -> bool:
                    return await _named(am_url, "VllmTargetDown", active=True) is None

                await wait_until(gone_from_am, timeout=5, what="resolved in Alertmanager")
            finally:
                await bus.close()


async def _named(am_url: str, name: str, *, active: bool) -> dict[str, object] | None:
    for alert in await _am_alerts(am_url, active):
        labels = alert.get("labels")
        if isinstance(labels, dict) and labels.get("alertname") == name:
            return alert
    return None


async def test_unreachable_alertmanager_is_counted_and_nats_publishing_goes_on(nats_url: str) -> None:
    from inferwatch.services.aggregator.alert_dispatch import AlertDispatcher, AlertingConfig
    from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE, AlertEngine, load_rules

    config = AlertingConfig(alertmanager_url=f"http://127.0.0.1:{free_port()}", tick_s=0.05, resend_s=0.2)
    engine = AlertEngine(load_rules(DEFAULT_RULES_FILE))
    dispatcher = AlertDispatcher(engine, config)
    bus = Bus(BusSettings(servers=(nats_url,)), name="test-dispatcher")
    await bus.connect()
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(bus, stop))
    try:
        alert = Alert(
            source="fp1",
            observed_at=time.time(),
            collector="aggregator",
            name="VllmTargetDown",
            state="firing",
            labels={"target": "x"},
            starts_at=time.time(),
        )
        dispatcher.submit([alert])
        await wait_until(
            lambda: dispatcher.published == 1 and dispatcher.forward_errors >= 1,
            timeout=5,
            what="published on NATS and a counted forwarding error",
        )
        assert dispatcher.forwarded == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await bus.close()

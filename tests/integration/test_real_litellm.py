"""litellm-poller against a real LiteLLM proxy: known traffic, then every per-group number equals the proxy's own.

The proxy (``scripts/real_litellm.py``) has mock-response deployments for chat, embedding and rerank, and
``dead-chat`` on a closed port that falls back to ``fake-chat``; its venv is cached
(``python -m scripts.real_litellm install``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.subjects import subject_filter
from inferwatch.shared.bus import Bus, BusSettings
from scripts import real_litellm
from scripts.real_servers import wait_http
from tests.support import free_port, get_text, running_service, wait_until
from tests.support.litellm import MARKER
from tests.support.real_servers import ServerProcess, require_venv, series

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHATS, EMBEDDINGS, RERANKS, FALLBACKS, FAILURES = 5, 3, 2, 2, 1
"""Known traffic: chats to fake-chat, embeddings, reranks, dead-chat calls that fall back, and one that may not."""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real LiteLLM proxy keyed with the marker key; its base URL. Every process of it stopped afterwards."""
    require_venv(real_litellm.VENV, "python -m scripts.real_litellm install")
    tmp = tmp_path_factory.mktemp("litellm")
    port, dead_port = free_port(), free_port()
    log = tmp / "litellm.log"
    server = ServerProcess(lambda: real_litellm.start(port, MARKER, dead_port, log), log)
    proc = server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(url + "/health/liveliness", 120, proc)
        except (TimeoutError, RuntimeError) as exc:
            raise AssertionError(f"{exc}\n{server.tail()}") from None
        yield url
    finally:
        server.stop()


def send_traffic(url: str) -> list[httpx.Response]:
    """The known traffic; every response."""
    responses = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MARKER}"}, timeout=60) as client:
        for i in range(CHATS):
            body = {"model": "fake-chat", "messages": [{"role": "user", "content": f"hello number {i}"}]}
            responses.append(client.post("/v1/chat/completions", json=body))
        for i in range(EMBEDDINGS):
            responses.append(client.post("/v1/embeddings", json={"model": "fake-embedding", "input": f"text {i}"}))
        for i in range(RERANKS):
            body = {"model": "fake-rerank", "query": f"query {i}", "documents": ["a doc", "another doc"]}
            responses.append(client.post("/v1/rerank", json=body))
        for i in range(FALLBACKS):
            body = {"model": "dead-chat", "messages": [{"role": "user", "content": f"fall back {i}"}]}
            responses.append(client.post("/v1/chat/completions", json=body))
        for i in range(FAILURES):
            body = {
                "model": "dead-chat",
                "messages": [{"role": "user", "content": f"no fallback {i}"}],
                "disable_fallbacks": True,
            }
            responses.append(client.post("/v1/chat/completions", json=body))
    return responses


def own(body: str, family: str, group: str, sub: str = "") -> dict[str, float]:
    """What the proxy's own exposition says for ``group``: ``family``'s ``_total`` samples summed by ``sub``."""
    out: dict[str, float] = {}
    for name, labels, value in series(body, family):
        if name == family + "_total" and labels.get("requested_model") == group:
            key = labels.get(sub, "") if sub else ""
            out[key] = out.get(key, 0.0) + value
    return out


def exported(body: str, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The aggregator's ``inferwatch_litellm_<name>`` samples matching ``labels``, keyed by their other labels."""
    family = "inferwatch_litellm_" + name.removesuffix("_total")
    return {
        tuple(sorted((k, v) for k, v in ls.items() if k not in labels and k not in ("proxy", "model_group"))): v
        for n, ls, v in series(body, family)
        if n == "inferwatch_litellm_" + name and all(ls.get(k) == x for k, x in labels.items())
    }


def one(body: str, name: str, **labels: str) -> float | None:
    values = exported(body, name, **labels)
    assert len(values) <= 1, (name, labels, values)
    return next(iter(values.values()), None)


async def test_poller_numbers_equal_the_real_proxys(
    proxy: str, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = send_traffic(proxy)
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * (CHATS + EMBEDDINGS + RERANKS + FALLBACKS) + [500] * FAILURES, [
        r.text[:300] for r in responses if r.status_code != 200
    ]
    for r in responses[-FAILURES - FALLBACKS : -FAILURES]:
        assert r.headers.get("x-litellm-attempted-fallbacks") == "1"
    own_body = await get_text(proxy + "/metrics/", headers={"Authorization": f"Bearer {MARKER}"})
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_LITELLM_URL": proxy,
        "INFERWATCH_LITELLM_KEY": MARKER,
        "INFERWATCH_LITELLM_NAME": "real",
        "INFERWATCH_LITELLM_INTERVAL_S": "0.5",
    }
    events: list[bytes] = []

    async def on_event(event: AnyEvent, _subject: str) -> None:
        if isinstance(event, LitellmProxySnapshot):
            events.append(msgspec.json.encode(event))

    bus = Bus(BusSettings(servers=(nats_url,)), name="real-litellm-observer")
    await bus.connect()
    await bus.subscribe(subject_filter("litellm"), on_event)
    try:
        async with running_service("aggregator", env) as agg, running_service("litellm-poller", env) as poller:
            expected_ok = own(own_body, "litellm_deployment_successful_fallbacks", "dead-chat").get("", 0.0)

            async def reported() -> str | None:
                body = await get_text(agg.url + "/metrics")
                got = one(body, "fallbacks_total", proxy="real", model_group="dead-chat", result="success")
                return body if got == expected_ok else None

            body = await wait_until(reported, timeout=30, what="the proxy's fallbacks on the aggregator")
            assert body is not None
            compared = check_groups(body, own_body)
            assert compared >= 30, compared
            assert one(body, "up", proxy="real") == 1.0
            assert one(body, "metrics_mode_info", proxy="real", mode="prometheus") == 1.0
            assert one(body, "info", proxy="real", version=real_litellm.VERSION) == 1.0
            types = {
                g: dict(k)["type"]
                for g in real_litellm.GROUPS
                for k in exported(body, "model_info", proxy="real", model_group=g)
            }
            assert types == {
                "fake-chat": "llm",
                "fake-embedding": "embedding",
                "fake-rerank": "reranker",
                "dead-chat": "llm",
            }
            check_known_traffic(body, responses)
            poller_metrics = await get_text(poller.url + "/metrics")
            for text in (body, poller_metrics, caplog.text, *(e.decode() for e in events)):
                assert MARKER not in text
            assert events
    finally:
        await bus.close()


def check_groups(body: str, own_body: str) -> int:
    """Assert every per-group number of the aggregator equals the proxy's own; returns how many were compared."""
    compared = 0
    usage_total = {"input": 0.0, "output": 0.0}
    for group in real_litellm.GROUPS:
        labels = {"proxy": "real", "model_group": group}
        by_code = own(own_body, "litellm_proxy_total_requests_metric", group, "status_code")
        classes: dict[str, float] = {}
        for code, value in by_code.items():
            key = f"{code[0]}xx" if len(code) == 3 and code.isdigit() else "none"
            classes[key] = classes.get(key, 0.0) + value
        mine = {dict(k)["status"]: v for k, v in exported(body, "requests_total", **labels).items()}
        assert mine == classes, (group, mine, classes)
        errors = own(own_body, "litellm_proxy_failed_requests_metric", group, "exception_class")
        mine_errors = {dict(k)["exception_class"]: v for k, v in exported(body, "errors_total", **labels).items()}
        assert mine_errors == {k or "unknown": v for k, v in errors.items()}, (group, mine_errors, errors)
        compared += 2
        for name, family in (
            ("input_tokens_total", "litellm_input_tokens_metric"),
            ("output_tokens_total", "litellm_output_tokens_metric"),
            ("tokens_total", "litellm_total_tokens_metric"),
            ("spend_usd_total", "litellm_spend_metric"),
        ):
            theirs = sum(own(own_body, family, group).values())
            assert (
                one(body, name, **labels) == pytest.approx(theirs)
                if theirs
                else one(body, name, **labels)
                in (
                    None,
                    0.0,
                )
            ), (group, name)
            compared += 1
        usage_total["input"] += one(body, "input_tokens_total", **labels) or 0.0
        usage_total["output"] += one(body, "output_tokens_total", **labels) or 0.0
        for result, family in (
            ("success", "litellm_deployment_successful_fallbacks"),
            ("failure", "litellm_deployment_failed_fallbacks"),
        ):
            theirs = sum(own(own_body, family, group).values())
            assert (one(body, "fallbacks_total", result=result, **labels) or 0.0) == theirs, (group, result)
            compared += 1
    return compared


def check_known_traffic(body: str, responses: list[httpx.Response]) -> None:
    """The aggregator's numbers against the traffic the test sent: counts, usage sums, response costs."""

    def requests(group: str) -> dict[str, float]:
        found = exported(body, "requests_total", proxy="real", model_group=group)
        return {dict(k)["status"]: v for k, v in found.items() if v}

    # LiteLLM 1.106.2 counts a request answered by a fallback under the group that answered it (its
    # requested_model label is the fallback's), while the fallback counters name the group asked for
    assert {g: requests(g) for g in real_litellm.GROUPS} == {
        "fake-chat": {"2xx": CHATS + FALLBACKS},
        "fake-embedding": {"2xx": EMBEDDINGS},
        "fake-rerank": {"2xx": RERANKS},
        "dead-chat": {"5xx": FAILURES},
    }
    assert one(body, "fallbacks_total", proxy="real", model_group="dead-chat", result="success") == FALLBACKS
    dead_errors = exported(body, "errors_total", proxy="real", model_group="dead-chat")
    assert sum(dead_errors.values()) == FAILURES, dead_errors
    usage = [r.json().get("usage") or {} for r in responses if r.status_code == 200]
    exported_sum = {
        name: sum(one(body, name, proxy="real", model_group=g) or 0.0 for g in real_litellm.GROUPS)
        for name in ("input_tokens_total", "output_tokens_total", "spend_usd_total")
    }
    assert exported_sum["input_tokens_total"] == sum(u.get("prompt_tokens", 0) for u in usage) > 0
    assert exported_sum["output_tokens_total"] == sum(u.get("completion_tokens", 0) for u in usage) > 0
    cost = sum(float(r.headers.get("x-litellm-response-cost", "0")) for r in responses)
    assert cost > 0
    assert exported_sum["spend_usd_total"] == pytest.approx(cost)

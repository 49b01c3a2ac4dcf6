"""The aggregator's pure core: rendering, expiry, tombstones, isolation of bad snapshots."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from inferwatch.contracts import Event, encode, sanitize_token, subject_for
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.services.aggregator.app import Aggregator
from inferwatch.services.aggregator.config import AggregatorConfig
from inferwatch.services.aggregator.domains import all_families, all_renderers
from inferwatch.services.aggregator.render import SeriesWriter, fmt_value, label_block, render_exposition
from inferwatch.services.aggregator.state import SOURCE_LAST_SEEN, SOURCE_UP, SourceTable
from tests.support.aggregator import vllm_snapshot as snapshot


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in parse_text(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_fmt_value() -> None:
    assert fmt_value(1.0) == "1"
    assert fmt_value(0.25) == "0.25"
    assert fmt_value(float("inf")) == "+Inf"
    assert fmt_value(float("-inf")) == "-Inf"
    assert fmt_value(float("nan")) == "NaN"
    assert float(fmt_value(1e300)) == 1e300
    assert label_block({"a": 'x"y\\z\nw'}) == '{a="x\\"y\\\\z\\nw"}'


def test_vllm_snapshot_renders_parseable_text_and_openmetrics() -> None:
    table = SourceTable(all_renderers())
    table.apply(snapshot(), now=0.0)
    table.apply(snapshot(source="http://10.0.0.2:8000", container_name="vllm-b"), now=0.0)
    text = render_exposition(table.rendered())
    got = samples(text)
    key = (
        "inferwatch_vllm_kv_cache_usage_ratio",
        (("container", "vllm-qwen"), ("engine", "0"), ("model_name", "qwen3-8b"), ("target", "http://10.0.0.1:8000")),
    )
    assert got[key] == 0.42
    assert (
        got[
            (
                "inferwatch_vllm_request_success_total",
                (
                    ("container", "vllm-qwen"),
                    ("engine", "0"),
                    ("finished_reason", "stop"),
                    ("model_name", "qwen3-8b"),
                    ("target", "http://10.0.0.1:8000"),
                ),
            )
        ]
        == 10
    )
    inf_bucket = [
        v
        for (n, labels), v in got.items()
        if n == "inferwatch_vllm_time_to_first_token_seconds_bucket" and ("le", "+Inf") in labels
    ]
    assert inf_bucket == [12.0, 12.0]
    # each family appears once, contiguous, even with two sources
    assert text.count(b"# TYPE inferwatch_vllm_up gauge") == 1
    assert text.count(b"# TYPE inferwatch_vllm_prompt_tokens_total counter") == 1
    om = render_exposition(table.rendered(), openmetrics=True)
    assert om.endswith(b"# EOF\n")
    families = {f.name: f for f in parse_openmetrics(om.decode())}
    assert families["inferwatch_vllm_prompt_tokens"].type == "counter"
    assert families["inferwatch_vllm_time_to_first_token_seconds"].type == "histogram"


def test_source_up_and_expiry_with_tombstone() -> None:
    table = SourceTable(all_renderers(), expiry_intervals=3, tombstone_s=10)
    table.apply(snapshot(), now=0.0)
    up = ("inferwatch_source_up", (("domain", "vllm"), ("kind", "instance"), ("source", "http://10.0.0.1:8000")))
    assert samples(render_exposition(table.rendered()))[up] == 1
    assert table.expire(now=2.9) == []
    assert [e.event.source for e in table.expire(now=3.1)] == ["http://10.0.0.1:8000"]
    after = samples(render_exposition(table.rendered()))
    assert after[up] == 0
    assert not any(name.startswith("inferwatch_vllm_") for name, _ in after)  # its series disappeared
    table.expire(now=13.2)
    assert up not in samples(render_exposition(table.rendered()))
    table.apply(snapshot(observed_at=200), now=14.0)  # comes back
    assert samples(render_exposition(table.rendered()))[up] == 1


def test_newer_snapshot_replaces_and_older_is_dropped() -> None:
    table = SourceTable(all_renderers())
    table.apply(snapshot(observed_at=100), now=0)
    table.apply(snapshot(observed_at=99, up=False, error="timeout"), now=1)
    assert table.stats.dropped == {"out_of_order": 1}
    table.apply(snapshot(observed_at=101, up=False, error="timeout", engines=[]), now=2)
    got = samples(render_exposition(table.rendered()))
    assert got[("inferwatch_vllm_up", (("container", "vllm-qwen"), ("target", "http://10.0.0.1:8000")))] == 0
    assert got[("inferwatch_vllm_scrape_error_info", (("reason", "timeout"), ("target", "http://10.0.0.1:8000")))] == 1
    assert not any(n == "inferwatch_vllm_requests_running" for n, _ in got)


def test_max_sources_is_a_counted_bound() -> None:
    table = SourceTable(all_renderers(), max_sources=2)
    for i in range(5):
        table.apply(snapshot(source=f"http://h{i}:1"), now=0)
    assert len(table.sources) == 2
    assert table.stats.dropped == {"max_sources": 3}


def test_a_failing_renderer_does_not_break_the_scrape() -> None:
    def broken(event: Event, w: SeriesWriter) -> None:
        raise RuntimeError("bug")

    renderers = {**all_renderers(), Heartbeat: broken}
    table = SourceTable(renderers)
    table.apply(
        Heartbeat(
            source="s@h:1",
            observed_at=1,
            collector="s@h:1",
            interval_s=5,
            service="s",
            version="0",
            started_at=0,
            ready=True,
        ),
        now=0,
    )
    table.apply(snapshot(), now=0)
    got = samples(render_exposition(table.rendered()))
    assert ("inferwatch_vllm_up", (("container", "vllm-qwen"), ("target", "http://10.0.0.1:8000"))) in got
    assert table.stats.render_errors == {"heartbeat.service": 1}


def test_aggregator_self_metrics_and_decode_errors() -> None:
    agg = Aggregator(AggregatorConfig())

    class Msg:
        def __init__(self, subject: str, data: bytes) -> None:
            self.subject, self.data = subject, data

    agg.on_message(Msg("inferwatch.v1.vllm.instance.x", b"\xc1garbage"))  # type: ignore[arg-type]
    got = samples(agg.render())
    assert got[("inferwatch_aggregator_decode_errors_total", (("subject_prefix", "inferwatch.v1.vllm.instance"),))] == 1


def test_a_heartbeat_of_the_previous_release_on_a_v1_subject_is_read_like_a_v2_one() -> None:
    agg = Aggregator(AggregatorConfig())

    class Msg:
        def __init__(self, subject: str, data: bytes) -> None:
            self.subject, self.data = subject, data

    def beat(instance: str) -> Heartbeat:
        return Heartbeat(
            source=instance,
            observed_at=0,
            collector=instance,
            interval_s=5,
            service="vllm-scraper",
            version="0",
            started_at=0,
            ready=True,
        )

    old, new = beat("vllm-scraper@old:1"), beat("vllm-scraper@new:1")
    v1_subject = "inferwatch.v1.heartbeat.service." + sanitize_token(old.source)  # as the previous release sent it
    agg.on_message(Msg(v1_subject, encode(old)))  # type: ignore[arg-type]
    agg.on_message(Msg(subject_for(new), encode(new)))  # type: ignore[arg-type]
    got = samples(agg.render())
    for instance in (old.source, new.source):
        assert got[("inferwatch_service_ready", (("instance", instance), ("service", "vllm-scraper")))] == 1


def test_family_names_follow_conventions() -> None:
    for family in [*all_families(), SOURCE_UP, SOURCE_LAST_SEEN]:
        assert family.name.startswith("inferwatch_"), family
        assert not family.name.endswith("_total"), family  # counters get _total on samples
        if family.type == "counter":
            assert not family.name.endswith("_seconds_total")
        assert family.help


def test_resent_snapshot_moves_last_seen_and_a_changed_one_rerenders() -> None:
    table = SourceTable(all_renderers())
    table.apply(snapshot(observed_at=100.0), now=0.0)
    first = samples(render_exposition(table.rendered()))
    table.apply(snapshot(observed_at=101.0), now=1.0)  # same content, later observation
    second = samples(render_exposition(table.rendered()))
    seen = (SOURCE_LAST_SEEN.name, (("domain", "vllm"), ("kind", "instance"), ("source", "http://10.0.0.1:8000")))
    assert (first[seen], second[seen]) == (100.0, 101.0)
    assert {k: v for k, v in first.items() if k != seen} == {k: v for k, v in second.items() if k != seen}
    table.apply(snapshot(observed_at=102.0, container_name="renamed"), now=2.0)
    third = samples(render_exposition(table.rendered()))
    assert any(dict(labels).get("container") == "renamed" for _, labels in third)
    assert not any(dict(labels).get("container") == "vllm-qwen" for _, labels in third)


def test_a_scrape_may_keep_a_changed_body_for_stale_s_and_render_changed_brings_it_up_to_date() -> None:
    table = SourceTable(all_renderers())
    table.apply(snapshot(observed_at=100.0), now=0.0)
    list(table.rendered())
    table.apply(snapshot(observed_at=100.5, container_name="renamed"), now=0.5)
    seen = (SOURCE_LAST_SEEN.name, (("domain", "vllm"), ("kind", "instance"), ("source", "http://10.0.0.1:8000")))

    def containers(body: bytes) -> set[str]:
        return {dict(labels)["container"] for _, labels in samples(body) if "container" in dict(labels)}

    kept = render_exposition(table.rendered(stale_s=1.0))  # rendered from the snapshot of 0.5 s before
    assert containers(kept) == {"vllm-qwen"}
    assert samples(kept)[seen] == 100.5  # the source_* series are always fresh
    clock = iter([0.0, 0.0, 10.0])
    assert table.render_changed(deadline=1.0, clock=lambda: next(clock)) is False  # one source, before the deadline
    assert containers(render_exposition(table.rendered(stale_s=1.0))) == {"renamed"}
    table.apply(snapshot(observed_at=102.0, container_name="older-than-stale_s"), now=2.0)
    assert containers(render_exposition(table.rendered(stale_s=1.0))) == {"older-than-stale_s"}


def test_render_changed_stops_at_its_deadline_and_goes_on_at_the_next_call() -> None:
    table = SourceTable(all_renderers())
    for i in range(3):
        table.apply(snapshot(source=f"http://10.0.0.{i}:8000", observed_at=100.0), now=0.0)
    ticks = iter(range(1, 100))
    assert table.render_changed(deadline=1.0, clock=lambda: float(next(ticks))) is True  # one rendered, then late
    assert sum(entry.meta is None for entry in table.sources.values()) == 2
    assert table.render_changed(deadline=1e9, clock=lambda: 0.0) is False
    assert all(entry.meta is not None and entry.body_from is entry.event for entry in table.sources.values())

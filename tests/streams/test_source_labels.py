"""The source label is bounded per process, and per-source latency is recorded."""

from __future__ import annotations

import threading

from tierflow.infra.prometheus import targets_from_registry
from tierflow.streams import metrics
from tierflow.streams.metrics import METRICS, OTHER_SOURCE, SourceLabels, observe_outcome
from tierflow.topics.records import DropPolicy, FrameRecord, Outcome, ServiceAnnouncement
from tierflow.topics.stages import StageName


def test_sources_past_the_limit_share_other() -> None:
    label = SourceLabels(2)
    assert [label(s) for s in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        OTHER_SOURCE,
        "a",
        OTHER_SOURCE,
        "b",
    ]


def test_the_limit_holds_under_concurrent_callers() -> None:
    label = SourceLabels(5)
    results: list[str] = []
    lock = threading.Lock()

    def call(start: int) -> None:
        got = [label(f"cam-{start + i}") for i in range(50)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=call, args=(i * 50,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results) - {OTHER_SOURCE}) == 5


def _record(source: str, outcome: Outcome, latency_s: float) -> FrameRecord:
    return FrameRecord(
        source=source,
        sequence=1,
        quality=320,
        capture_ns=1,
        outcome=outcome,
        stage=StageName.DRAW,
        policy=DropPolicy.DEADLINE if outcome is Outcome.DROPPED else None,
        latency_s=latency_s,
    )


def _count(source: str) -> float:
    value = METRICS.source_end_to_end.labels(source)._sum.get()
    return float(value)


def test_processed_frames_feed_the_per_source_latency_and_drops_do_not() -> None:
    source = metrics.source_label("src-latency-test")
    assert source == "src-latency-test"  # the process-wide limit (32) is not reached here
    before = _count(source)
    observe_outcome(_record(source, Outcome.PROCESSED, 0.25))
    observe_outcome(_record(source, Outcome.DROPPED, 9.0))
    assert _count(source) - before == 0.25


def test_registry_targets_carry_the_topic_prefix() -> None:
    announced = ServiceAnnouncement(
        service_id="a",
        stage=StageName.DRAW,
        topic="frames.detected",
        heartbeat_ns=1,
        ttl_s=4.0,
        metrics_host="127.0.0.1",
        metrics_port=9400,
    )
    (labelled,) = targets_from_registry([announced], "exp.a.b.1")
    assert labelled.labels["prefix"] == "exp.a.b.1"
    (bare,) = targets_from_registry([announced])
    assert "prefix" not in bare.labels

"""A 3-broker local KRaft cluster: replicated catalogue, and kill -9 of a broker mid-run.

The failover test runs 2 generated cameras at 5 frames/s through resize -> detect (null
backend) -> draw in-process, on a cluster of its own (free ports, a tmp state dir), and
SIGKILLs the broker leading the most partitions once frames flow. Every produced frame
must end with exactly one outcome; the longest gap between processed frames (the pause
the failover cost) is printed as one ``FAILOVER {json}`` line, which
``bench/broker_failover.py`` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import free_port
from tests.waiting import eventually, until
from tierflow.errors import ConfigError
from tierflow.infra.kafka import LocalCluster
from tierflow.settings import Settings, load_settings
from tierflow.streams.accounting import MetricsCollector
from tierflow.streams.camera import Camera, camera_producer
from tierflow.streams.capture import SceneSource
from tierflow.streams.stages import build_stage
from tierflow.topics.admin import TopicState, create_catalogue, describe_topics, wait_for_cluster
from tierflow.topics.contract import Contract
from tierflow.topics.errors import TopicAdminError
from tierflow.topics.stages import StageName

BROKERS = 3
CAMERAS = 2
FPS = 5.0
RUN_S = 15.0
QUALITY = 416
HEAP = "256m"  # 3 JVMs on 2 cores next to the pipeline; 256 MiB each came up in ~11 s
MAX_PAUSE_S = 30.0


def test_replication_follows_the_broker_count() -> None:
    for brokers, rf, isr in ((1, 1, None), (2, 2, None), (3, 3, "2"), (5, 3, "2")):
        catalogue = Contract.of(load_settings(broker={"brokers": brokers})).catalogue
        assert {s.replication_factor for s in catalogue} == {rf}, brokers
        assert {s.config.get("min.insync.replicas") for s in catalogue} == {isr}, brokers
    explicit = load_settings(broker={"brokers": 3}, topics={"replication_factor": 2})
    assert {s.replication_factor for s in Contract.of(explicit).catalogue} == {2}
    too_strict = load_settings(topics={"replication_factor": 2, "min_insync_replicas": 3})
    with pytest.raises(ConfigError, match="min_insync_replicas=3 exceeds"):
        Contract.of(too_strict)


def test_cluster_nodes_vote_together_and_replicate_internal_topics(tmp_path: Path) -> None:
    settings = load_settings(broker={"brokers": 3, "state_dir": tmp_path})
    cluster = LocalCluster(settings)
    props = [cluster.server_properties(i) for i in range(3)]
    voters = {p["controller.quorum.voters"] for p in props}
    assert voters == {"1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"}
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert len({p["log.dirs"] for p in props}) == 3
    assert {p["offsets.topic.replication.factor"] for p in props} == {"3"}
    assert {p["min.insync.replicas"] for p in props} == {"2"}
    assert cluster.bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert settings.bootstrap == cluster.bootstrap  # every client bootstraps from all three
    single = LocalCluster(load_settings(broker={"state_dir": tmp_path}))
    assert (
        single.home == tmp_path / "9092" and "min.insync.replicas" not in single.server_properties()
    )


def _cluster_settings(tmp_path: Path, ports: list[tuple[int, int]], bootstrap: str) -> Settings:
    return load_settings(
        bootstrap_servers=bootstrap or None,
        broker={
            "brokers": BROKERS,
            "port": ports[0][0],
            "controller_port": ports[0][1],
            "state_dir": tmp_path / "kafka",
            "heap": HEAP,
        },
        topics={"prefix": f"ha-{uuid.uuid4().hex[:8]}", "qualities": [QUALITY]},
        workers={"data_dir": tmp_path / "workers"},
        detector={"backend": "null", "threads": 1},
        # No frame may be dropped for age while the cluster fails over: the test measures
        # the pause, and every frame must come out processed.
        dataplane={"output_dir": tmp_path / "annotated", "deadline_s": 120.0},
    )


def _longest_gap(times: list[float]) -> tuple[float, float]:
    """The longest gap between consecutive times (seconds) and when it started."""
    ordered = sorted(times)
    gaps = [(b - a, a) for a, b in itertools.pairwise(ordered)]
    return max(gaps, default=(0.0, 0.0))


@pytest.mark.kafka
async def test_kill_9_of_a_broker_loses_no_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TIERFLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    ports = [(free_port(), free_port()) for _ in range(BROKERS)]
    cluster = LocalCluster(_cluster_settings(tmp_path, ports, ""), ports=ports)
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(cluster.start)
        startup_s = time.monotonic() - t0
        # Clients get every node: a client (re)connecting while node 1 is dead still finds
        # the cluster.
        settings = _cluster_settings(tmp_path, ports, cluster.bootstrap)
        contract = Contract.of(settings)
        await asyncio.to_thread(create_catalogue, contract)
        admin = await asyncio.to_thread(wait_for_cluster, contract)

        def described() -> list[TopicState] | None:
            # Every node learns of new topics from the metadata log, not at once.
            try:
                return describe_topics(admin, contract.catalogue)
            except TopicAdminError:
                return None

        states = await asyncio.to_thread(
            eventually, described, lambda st: st is not None and all(s.exists for s in st)
        )
        assert states is not None
        assert all(s.replication_factor == BROKERS for s in states)
        assert all(s.config.get("min.insync.replicas") == "2" for s in states)
        result = await _run_and_kill(cluster, settings, contract)
        result["startup_s"] = round(startup_s, 1)
        print("\nFAILOVER " + json.dumps(result))
        assert result["unaccounted"] == 0, result
        assert result["lost_on_camera"] == 0, result
        assert result["processed_after_kill"] > 0, result
        assert result["pause_s"] < MAX_PAUSE_S, result
    finally:
        await asyncio.to_thread(cluster.stop)


async def _run_and_kill(
    cluster: LocalCluster, settings: Settings, contract: Contract
) -> dict[str, Any]:
    ids = [f"cam-{i}" for i in range(CAMERAS)]
    collector = MetricsCollector(contract, set(ids))
    await collector.start()
    producer = camera_producer(contract, "test-ha-cameras", settings.camera.queue_kbytes)
    cameras = [
        Camera(contract, cid, SceneSource(seed=i, size=640), producer, None, FPS, QUALITY)
        for i, cid in enumerate(ids)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop, RUN_S), daemon=True) for c in cameras]
    tallies = collector.tallies
    async with contextlib.AsyncExitStack() as stack:
        for service in (
            build_stage(settings, StageName.DETECT, QUALITY),
            build_stage(settings, StageName.DRAW),
            build_stage(settings, StageName.RESIZE),
        ):
            await stack.enter_async_context(service.run())
        for thread in threads:
            thread.start()
        await until(
            lambda: all(c in tallies and tallies[c].processed >= 5 for c in ids),
            60,
            "five processed frames per camera",
        )
        leaders = cluster.leaders(contract.catalogue.names)
        victim = max(range(BROKERS), key=lambda i: leaders[i + 1])
        processed_before = sum(tallies[c].processed for c in ids)
        killed_at = time.time()
        assert cluster.kill(victim)
        for thread in threads:
            await asyncio.to_thread(thread.join)
        await asyncio.to_thread(producer.flush, 60)
        expected = {c.source_id: c.stats.produced for c in cameras}
        drained = await collector.wait_for(expected, 60)
        await asyncio.sleep(0)  # let the last fetch's records be tallied
    await collector.stop()
    assert drained, {c: (tallies[c].accounted, n) for c, n in expected.items()}

    unaccounted = 0
    for cam in cameras:
        tally = tallies[cam.source_id]
        missing = set(cam.stats.produced_sequences) - tally.sequences()
        extra = tally.sequences() - set(cam.stats.produced_sequences)
        unaccounted += len(missing) + len(extra) + abs(tally.accounted - cam.stats.produced)
    exits = [t for c in ids for t in tallies[c].processed_at_s]
    pause_s, pause_from = _longest_gap(exits)
    return {
        "brokers": BROKERS,
        "killed_node": victim + 1,
        "leaders_before_kill": {str(k): v for k, v in sorted(leaders.items())},
        "produced": sum(c.stats.produced for c in cameras),
        "sent": sum(c.stats.sent for c in cameras),
        "lost_on_camera": sum(c.stats.sent - c.stats.produced for c in cameras)
        + sum(sum(c.stats.dropped.values()) for c in cameras),
        "accounted": sum(tallies[c].accounted for c in ids),
        "processed": sum(tallies[c].processed for c in ids),
        "processed_after_kill": sum(tallies[c].processed for c in ids) - processed_before,
        "dropped": dict(sum((tallies[c].dropped for c in ids), Counter[str]())),
        "deadlettered": sum(sum(tallies[c].deadlettered.values()) for c in ids),
        "unaccounted": unaccounted,
        "duplicates": sum(tallies[c].duplicates for c in ids),
        "pause_s": round(pause_s, 2),
        "pause_starts_after_kill_s": round(pause_from - killed_at, 2),
    }

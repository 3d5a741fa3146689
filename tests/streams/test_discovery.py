from __future__ import annotations

import time

from tierflow.streams.discovery import MAX_TTL_S, RegistryView
from tierflow.topics.records import ServiceAnnouncement

S = 1_000_000_000


def _detect(sid: str, quality: int, at_s: float, ttl_s: float = 3.0) -> ServiceAnnouncement:
    return ServiceAnnouncement(
        service_id=sid,
        stage="detect",
        quality=quality,
        input_size=quality,
        topic=f"frames.ready.{quality}",
        heartbeat_ns=int(at_s * S),
        ttl_s=ttl_s,
    )


def test_a_live_detector_serves_its_quality_only() -> None:
    view = RegistryView()
    view.apply("d512", _detect("d512", 512, 10))
    assert view.detector_for(512, 11 * S) is not None
    assert view.detector_for(320, 11 * S) is None
    assert view.live_qualities(11 * S) == {512}


def test_a_detector_that_stops_heart_beating_is_forgotten_after_its_ttl() -> None:
    view = RegistryView()
    view.apply("d512", _detect("d512", 512, 10, ttl_s=3))
    assert view.detector_for(512, 13 * S) is not None
    assert view.detector_for(512, int(13.1 * S)) is None


def test_a_tombstone_forgets_at_once() -> None:
    view = RegistryView()
    view.apply("d512", _detect("d512", 512, 10))
    view.apply("d512", None)
    assert view.detector_for(512, 10 * S) is None


def test_an_older_heartbeat_arriving_late_does_not_win() -> None:
    view = RegistryView()
    view.apply("d512", _detect("d512", 512, 20))
    view.apply("d512", _detect("d512", 512, 10))
    known = view.get("d512")
    assert known is not None and known.heartbeat_ns == 20 * S


def test_the_most_recently_heard_detector_is_chosen() -> None:
    view = RegistryView()
    view.apply("old", _detect("old", 512, 10))
    view.apply("new", _detect("new", 512, 11))
    chosen = view.detector_for(512, 12 * S)
    assert chosen is not None and chosen.service_id == "new"


def _probed(consumers: dict[str, set[str]]) -> RegistryView:
    view = RegistryView()
    view.consumers = consumers
    return view


def test_probed_a_record_without_a_consumer_group_is_not_believed() -> None:
    view = _probed({})
    view.apply("forged", _detect("forged", 320, 10))  # hand-written: no group named
    assert view.detector_for(320, 10 * S) is None


def test_probed_a_group_consuming_another_topic_does_not_serve_the_quality() -> None:
    view = _probed({"tierflow-detect-416": {"frames.ready.416"}})
    stray = _detect("stray", 320, 10).model_copy(update={"group": "tierflow-detect-416"})
    view.apply("stray", stray)
    assert view.detector_for(320, 10 * S) is None


def test_probed_a_crashed_member_still_holding_its_partitions_stays_live_past_its_ttl() -> None:
    view = _probed({"tierflow-detect-512": {"frames.ready.512"}})
    view.apply("d512", _detect("d512", 512, 10).model_copy(update={"group": "tierflow-detect-512"}))
    assert view.detector_for(512, 60 * S) is not None  # being restarted: frames wait for it
    view.consumers = {"tierflow-detect-512": set()}  # its session timed out, nobody took over
    assert view.detector_for(512, 60 * S) is None


def test_a_forged_future_heartbeat_neither_shadows_real_ones_nor_keeps_a_service_live() -> None:
    now_s = time.time()
    view = RegistryView()
    view.apply("d512", _detect("d512", 512, 9e9))  # the year 2255
    assert view.refused == 1
    view.apply("d512", _detect("d512", 512, now_s, ttl_s=3))
    assert view.detector_for(512, int((now_s + 1) * S)) is not None
    assert view.detector_for(512, int((now_s + 4) * S)) is None  # its real heartbeat expired


def test_a_claimed_ttl_longer_than_the_ceiling_expires_at_the_ceiling() -> None:
    view = RegistryView()
    view.apply("d512", _detect("d512", 512, 10, ttl_s=1e18))
    assert view.detector_for(512, int((10 + MAX_TTL_S - 1) * S)) is not None
    assert view.detector_for(512, int((10 + MAX_TTL_S + 1) * S)) is None

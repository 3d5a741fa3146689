"""Per-source accounting without a broker: outcomes, duplicates, F1 and bounded memory."""

from __future__ import annotations

from tierflow.streams.accounting import RecentSet, SourceTally, micro_f1
from tierflow.topics.records import DropPolicy, FrameRecord, Outcome


def _record(
    seq: int, outcome: Outcome = Outcome.PROCESSED, capture_ns: int = 0, **fields: object
) -> FrameRecord:
    return FrameRecord(
        source="cam",
        sequence=seq,
        quality=512,
        capture_ns=capture_ns,
        outcome=outcome,
        stage="draw",
        latency_s=0.1 * (seq + 1),
        **fields,
    )


def test_each_outcome_is_counted_once_and_a_redelivery_is_a_duplicate() -> None:
    tally = SourceTally()
    tally.add(_record(0, tp=2, fp=1, fn=1), 0.0)
    tally.add(_record(1, Outcome.DROPPED, policy=DropPolicy.SUPERSEDED), 0.0)
    tally.add(_record(2, Outcome.DEADLETTER, reason="truncated-image"), 0.0)
    tally.add(_record(0, tp=2, fp=1, fn=1), 0.0)  # delivered twice (at least once)
    assert tally.accounted == 3
    assert tally.duplicates == 1
    assert dict(tally.dropped) == {"superseded": 1}
    assert dict(tally.deadlettered) == {"truncated-image": 1}
    assert tally.f1 == micro_f1(2, 1, 1) == 4 / 6


def test_recent_set_forgets_the_oldest_beyond_its_size() -> None:
    recent: RecentSet[int] = RecentSet(size=3)
    for item in (1, 2, 3, 2, 4):
        recent.add(item)
    assert 1 not in recent
    assert recent.snapshot() == {2, 3, 4}
    assert len(recent) == 3


def test_no_scored_frames_has_no_f1() -> None:
    assert micro_f1(0, 0, 0) is None
    assert SourceTally().f1 is None


def test_a_camera_restarted_under_the_same_id_is_not_a_duplicate() -> None:
    tally = SourceTally()
    tally.add(_record(0, capture_ns=1), 0.0)
    tally.add(_record(0, capture_ns=2), 0.0)  # a new process counts from 0 again
    tally.add(_record(0, capture_ns=2), 0.0)  # the redelivery of that one is a duplicate
    assert (tally.processed, tally.duplicates) == (2, 1)

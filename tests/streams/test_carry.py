"""Pairs of processed frames feed the controller's carry-forward model."""

from __future__ import annotations

from tierflow.operators.vision.detections import Detections
from tierflow.streams.carry import CarryPairs
from tierflow.topics.envelope import DetectionsJson
from tierflow.topics.records import FrameRecord, Outcome

FACE = [10.0, 10.0, 40.0, 40.0]


def _processed(sequence: int, t_s: float, truth: list[float], found: list[float]) -> FrameRecord:
    size = (64, 64)
    return FrameRecord(
        source="cam",
        sequence=sequence,
        quality=512,
        capture_ns=int(t_s * 1e9),
        outcome=Outcome.PROCESSED,
        stage="draw",
        latency_s=0.1,
        f1=1.0,
        truth=DetectionsJson.of(Detections.from_lists([truth], ["face"], size)),
        found=DetectionsJson.of(Detections.from_lists([found], ["face"], size), ("face",)),
    )


def test_a_frame_is_paired_with_the_earlier_frames_of_its_source() -> None:
    pairs = CarryPairs()
    assert list(pairs.add(_processed(0, 0.0, FACE, FACE))) == []
    moved = [30.0, 30.0, 60.0, 60.0]  # the face moved away: the old box misses it
    (pair,) = pairs.add(_processed(1, 0.5, moved, moved))
    assert (pair.lag_s, pair.carried_f1, pair.fresh_f1) == (0.5, 0.0, 1.0)
    lags = sorted(p.lag_s for p in pairs.add(_processed(2, 1.0, moved, moved)))
    assert lags == [0.5, 1.0]

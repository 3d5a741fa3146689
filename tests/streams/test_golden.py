"""Golden-configuration truth: frames scored against reference copies at the strongest quality."""

from __future__ import annotations

from tierflow.operators.vision.detections import Detections
from tierflow.streams.accounting import SourceTally
from tierflow.streams.golden import GoldenPairs
from tierflow.streams.outcomes import ledger
from tierflow.topics.envelope import DetectionsJson, FrameMeta, decode_meta, encode_headers
from tierflow.topics.records import FrameRecord, Outcome

BOX = [10.0, 10.0, 50.0, 50.0]


def record(
    quality: int, boxes: list[list[float]], reference: bool = False, sequence: int = 3
) -> FrameRecord:
    found = Detections.from_lists(boxes, ["face"] * len(boxes), (quality, quality))
    return FrameRecord(
        source="cam", sequence=sequence, quality=quality, capture_ns=77,
        outcome=Outcome.PROCESSED, stage="draw", latency_s=0.1, detector="haar:face",
        found=DetectionsJson.of(found, ("face",)), reference=True if reference else None,
    )  # fmt: skip


def test_a_frame_is_scored_against_its_reference_in_either_order() -> None:
    scale = 320 / 512
    frame = record(320, [[v * scale for v in BOX], [200, 200, 230, 230]])  # one right, one not
    copy = record(512, [BOX], reference=True)
    for first, second in ((frame, copy), (copy, frame)):
        pairs = GoldenPairs()
        assert pairs.add(first) is None
        scored = pairs.add(second)
        assert scored is not None and scored.quality == 320
        assert (scored.counts.tp, scored.counts.fp, scored.counts.fn) == (1, 1, 0)


def test_frames_with_truth_or_without_detections_are_not_paired() -> None:
    pairs = GoldenPairs()
    labelled = record(512, [BOX]).model_copy(
        update={"truth": DetectionsJson.of(Detections.from_lists([BOX], ["face"], (512, 512)))}
    )
    assert pairs.add(labelled) is None
    dropped = record(512, [BOX]).model_copy(update={"outcome": Outcome.DROPPED})
    assert pairs.add(dropped) is None
    assert pairs.add(record(512, [BOX], reference=True)) is None  # nothing was waiting


def test_waiting_records_are_bounded() -> None:
    pairs = GoldenPairs(pending=2)
    for sequence in range(3):
        pairs.add(record(320, [BOX], sequence=sequence))
    assert pairs.add(record(512, [BOX], reference=True, sequence=0)) is None  # forgotten
    assert pairs.add(record(512, [BOX], reference=True, sequence=2)) is not None


def test_a_reference_copy_is_no_frame_in_the_tally_but_scores_one() -> None:
    tally = SourceTally()
    tally.add(record(512, [BOX]), 0.0)
    tally.add(record(512, [BOX], reference=True), 0.0)
    assert (tally.processed, tally.accounted, tally.duplicates) == (1, 1, 0)
    assert tally.golden_scored == 1 and tally.f1 == 1.0
    assert tally.summary()["golden_scored"] == 1


def test_a_reference_copy_has_its_own_outcome_ledger() -> None:
    frame, copy = record(512, [BOX]), record(512, [BOX], reference=True)
    assert ledger(frame) != ledger(copy)


def test_the_reference_flag_travels_in_the_headers() -> None:
    meta = FrameMeta("cam", 3, 77, 512, reference=True)
    assert decode_meta(encode_headers(meta)).reference is True
    assert decode_meta(encode_headers(FrameMeta("cam", 3, 77, 512))).reference is False

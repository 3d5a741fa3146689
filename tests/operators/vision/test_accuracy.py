from __future__ import annotations

import pytest

from tierflow.operators.vision.accuracy import CarryForward, F1Score, MatchCounts, f1_score, match
from tierflow.operators.vision.detections import Detections

SIZE = (100, 100)


def _dets(
    boxes: list[list[float]],
    labels: list[str],
    confidence: list[float] | None = None,
    size: tuple[int, int] = SIZE,
) -> Detections:
    return Detections.from_lists(boxes, labels, size, confidence)


FACE = [10.0, 10.0, 30.0, 30.0]
OTHER = [60.0, 60.0, 80.0, 80.0]


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        pytest.param(
            _dets([FACE, OTHER], ["face", "face"]),
            _dets([FACE, OTHER], ["face", "face"]),
            MatchCounts(2, 0, 0),
            id="perfect",
        ),
        pytest.param(
            _dets([FACE, OTHER], ["face", "face"]),
            _dets([FACE], ["face"]),
            MatchCounts(1, 1, 0),
            id="one-false-positive",
        ),
        pytest.param(
            _dets([FACE], ["face"]),
            _dets([FACE, OTHER], ["face", "face"]),
            MatchCounts(1, 0, 1),
            id="one-false-negative",
        ),
        pytest.param(
            _dets([FACE], ["person"]),
            _dets([FACE], ["face"]),
            MatchCounts(0, 1, 1),
            id="label-mismatch",
        ),
        pytest.param(
            # 20 x 10 inside 20 x 20: IoU exactly 0.5 counts.
            _dets([[10.0, 10.0, 30.0, 20.0]], ["face"]),
            _dets([FACE], ["face"]),
            MatchCounts(1, 0, 0),
            id="iou-exactly-0.5",
        ),
        pytest.param(
            # 20 x 9.9 inside 20 x 20: IoU 0.495.
            _dets([[10.0, 10.0, 30.0, 19.9]], ["face"]),
            _dets([FACE], ["face"]),
            MatchCounts(0, 1, 1),
            id="iou-just-below-0.5",
        ),
        pytest.param(
            _dets([FACE, FACE, [11.0, 11.0, 31.0, 31.0]], ["face"] * 3),
            _dets([FACE], ["face"]),
            MatchCounts(1, 2, 0),
            id="duplicates-matched-once",
        ),
        pytest.param(
            _dets([[5.0, 5.0, 15.0, 15.0]], ["face"], size=(50, 50)),
            _dets([FACE], ["face"]),
            MatchCounts(1, 0, 0),
            id="rescaled-from-smaller-image",
        ),
        pytest.param(
            _dets([FACE], ["face"], size=(50, 50)),
            _dets([FACE], ["face"]),
            MatchCounts(0, 1, 1),
            id="same-numbers-other-size-do-not-match",
        ),
        pytest.param(
            Detections.empty(SIZE), Detections.empty(SIZE), MatchCounts(0, 0, 0), id="empty"
        ),
    ],
)
def test_match_counts(pred: Detections, truth: Detections, expected: MatchCounts) -> None:
    assert match(pred, truth) == expected


def test_greedy_matching_gives_the_truth_to_the_most_confident_detection() -> None:
    # Both detections overlap the one true box; the confident one wins even with lower IoU.
    truth = _dets([FACE], ["face"])
    pred = _dets([[10.0, 10.0, 30.0, 30.0], [12.0, 12.0, 32.0, 32.0]], ["face", "face"], [0.2, 0.9])
    assert match(pred, truth) == MatchCounts(1, 1, 0)
    one_truth_each = _dets([FACE, [12.0, 12.0, 32.0, 32.0]], ["face", "face"])
    assert match(pred, one_truth_each) == MatchCounts(2, 0, 0)


def test_labels_restrict_both_sides() -> None:
    truth = _dets([FACE, OTHER], ["face", "person"])
    pred = _dets([FACE, [0.0, 0.0, 5.0, 5.0]], ["face", "car"])
    assert match(pred, truth) == MatchCounts(1, 1, 1)
    assert match(pred, truth, labels=["face"]) == MatchCounts(1, 0, 0)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [((0, 0, 0), 1.0), ((1, 0, 0), 1.0), ((0, 1, 0), 0.0), ((0, 0, 1), 0.0), ((4, 1, 1), 0.8)],
)
def test_f1_score(counts: tuple[int, int, int], expected: float) -> None:
    assert f1_score(*counts) == pytest.approx(expected)


def test_f1_accumulates_counts_over_frames_and_resets() -> None:
    truth = _dets([FACE, OTHER], ["face", "face"])
    score = F1Score()
    score.update(_dets([FACE], ["face"]), truth)  # 1 TP, 1 FN
    score.update(_dets([FACE, OTHER, [0.0, 0.0, 5.0, 5.0]], ["face"] * 3), truth)  # 2 TP, 1 FP
    assert score.counts == MatchCounts(3, 1, 1)
    assert score.compute() == pytest.approx(6 / 8)
    score.reset()
    assert score.counts == MatchCounts(0, 0, 0)
    assert score.compute() == 1.0


def test_f1_score_ignores_truth_the_detector_cannot_report() -> None:
    truth = _dets([FACE, OTHER], ["face", "person"])
    pred = _dets([FACE], ["face"])
    assert F1Score(labels=("face",)).update(pred, truth).compute() == 1.0
    assert F1Score().update(pred, truth).compute() == pytest.approx(2 / 3)


def test_carry_forward_scores_unanalysed_frames_with_the_last_analysed_detections() -> None:
    score = CarryForward()
    moved = [12.0, 12.0, 32.0, 32.0]  # still IoU >= 0.5 with FACE
    gone = [50.0, 50.0, 70.0, 70.0]  # no longer overlaps
    # out of order, as records arrive: the analysed frame 0 comes after frames 1 and 2
    score.add(1, 10, _dets([moved], ["face"]))
    score.add(2, 20, _dets([gone], ["face"]))
    score.add(0, 0, _dets([FACE], ["face"]), found=_dets([FACE], ["face"]), labels=["face"])
    score.resolve()
    # frame 0: TP; frame 1: the carried box still matches; frame 2: it misses and is an FP
    assert score.counts == MatchCounts(2, 1, 1)
    assert score.frames == 3


def test_carry_forward_counts_misses_before_the_first_analysed_frame() -> None:
    score = CarryForward()
    score.add(0, 0, _dets([FACE, OTHER], ["face", "person"]))
    score.add(1, 10, _dets([FACE], ["face"]), found=_dets([], [], size=SIZE), labels=["face"])
    score.resolve(before_ns=5)  # only frame 0 is final
    assert score.counts == MatchCounts(0, 0, 1)  # the person is not a label the detector has
    score.resolve()
    assert score.counts == MatchCounts(0, 0, 2)
    assert score.f1 == 0.0

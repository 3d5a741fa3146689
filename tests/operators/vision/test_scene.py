from __future__ import annotations

import numpy as np
import pytest

from tierflow.operators.vision.accuracy import F1Score
from tierflow.operators.vision.detectors.haar import HaarDetector
from tierflow.operators.vision.scene import FACE, PERSON, Scene, SceneConfig, at_quality


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene(SceneConfig(seed=3))


def test_same_seed_and_time_give_identical_frames_and_truth(scene: Scene) -> None:
    again = Scene(SceneConfig(seed=3))
    for t_s in (0.0, 1.25, 17.5):
        frame, truth = scene.render(t_s)
        frame2, truth2 = again.render(t_s)
        np.testing.assert_array_equal(frame, frame2)
        np.testing.assert_array_equal(truth.xyxy, truth2.xyxy)
        np.testing.assert_array_equal(truth.labels, truth2.labels)


def test_different_seeds_give_different_scenes(scene: Scene) -> None:
    frame, truth = scene.render(1.0)
    other, other_truth = Scene(SceneConfig(seed=4)).render(1.0)
    assert not np.array_equal(frame, other)
    assert truth.xyxy.shape != other_truth.xyxy.shape or not np.allclose(
        truth.xyxy, other_truth.xyxy
    )


def test_objects_move_over_time(scene: Scene) -> None:
    frame0, truth0 = scene.render(0.0)
    frame2, truth2 = scene.render(2.0)
    assert np.abs(frame0.astype(int) - frame2.astype(int)).mean() > 1.0
    # Speeds are 20..80 px/s: after 2 s every person box has moved by at least ~40 px.
    person0 = truth0.with_labels([PERSON]).xyxy
    person2 = truth2.with_labels([PERSON]).xyxy
    assert len(person0) == len(person2) == 1
    assert np.abs(person0 - person2).max() >= 30


def test_truth_is_inside_the_frame_with_known_labels(scene: Scene) -> None:
    size = scene.config.size
    for t_s in np.linspace(0, 60, 25):
        frame, truth = scene.render(float(t_s))
        assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
        assert truth.image_size == (size, size)
        assert len(truth) > 0
        assert set(truth.labels.tolist()) <= {FACE, PERSON}
        assert np.all(truth.confidence == 1.0)
        assert np.all(truth.xyxy >= 0) and np.all(truth.xyxy <= size)
        assert np.all(truth.xyxy[:, 2:] - truth.xyxy[:, :2] >= 10)


def test_occluded_objects_leave_the_truth() -> None:
    crowded = SceneConfig(seed=5, faces=20)
    everything = Scene(SceneConfig(seed=5, faces=20, max_occluded=1.0))
    honest = Scene(crowded)
    expected = crowded.faces + 2 * crowded.people
    dropped = 0
    for t_s in np.linspace(0, 30, 16):
        assert len(everything.render(float(t_s))[1]) == expected
        dropped += expected - len(honest.render(float(t_s))[1])
    assert dropped > 0


def test_a_frame_at_a_quality_is_the_scene_drawn_at_that_size(scene: Scene) -> None:
    frame, truth = scene.render(4.0)
    small, small_truth = scene.render_at(4.0, 320)
    assert small.shape == (320, 320, 3)
    assert small_truth.image_size == (320, 320)
    np.testing.assert_allclose(small_truth.xyxy, truth.xyxy * 320 / scene.config.size, rtol=1e-5)
    # Pasted from pictures scaled once instead of resized after a full-size render: the
    # same picture up to a pixel of placement at the sprites' edges.
    resized, _ = at_quality(frame, truth, 320)
    difference = np.abs(small.astype(np.int16) - resized.astype(np.int16))
    assert difference.mean() < 6 and np.median(difference) <= 2


@pytest.mark.parametrize(
    "bad",
    [{"size": 100}, {"faces": -1}, {"face_px": (80.0, 40.0)}, {"max_occluded": 1.5}],
)
def test_invalid_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid SceneConfig"):
        SceneConfig(**bad)  # type: ignore[arg-type]


# Measured with the defaults (4 seeds x 15 frames): F1 0.97 @512, 0.72 @320.
F1_FLOOR_512 = 0.85
F1_GAP_512_320 = 0.15


def test_haar_f1_on_generated_scenes_is_good_at_512_and_worse_at_320() -> None:
    scenes = [Scene(SceneConfig(seed=seed)) for seed in range(4)]
    f1 = {}
    for quality in (512, 320):
        detector = HaarDetector(quality)
        score = F1Score(labels=detector.labels)
        for s in scenes:
            for t_s in np.arange(15) * 0.7:
                frame, truth = s.render_at(float(t_s), quality)
                score.update(detector.detect([frame])[0], truth)
        f1[quality] = score.compute()
    assert f1[512] >= F1_FLOOR_512, f1
    assert f1[512] - f1[320] >= F1_GAP_512_320, f1

"""Assignment epochs are the controller's wall clock in ms, bounded by a skew (issue 11, part 4).

A record on ``control.assignments`` whose epoch lies more than ``camera.epoch_skew_s``
ahead of the camera's own clock is ignored with one warning: it neither switches the
camera nor shadows the real assignments that follow it, on a running camera or one that
reads the topic anew.
"""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Producer

from tests.waiting import eventually
from tierflow.settings import Settings
from tierflow.streams.assignments import AssignmentFollower, publish_assignment
from tierflow.streams.camera import Camera
from tierflow.streams.capture import SceneSource
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.records import Assignment

FORGED_EPOCH = 9 * 10**18
"""The forged epoch of the adversarial test: 285 million years from now, in ms."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _camera(contract: Contract, follower: AssignmentFollower, source: str) -> Camera:
    producer = Producer(producer_config(contract, client_id=f"{source}-frames"))
    return Camera(contract, source, SceneSource(1, 256), producer, follower, 25.0, 512)


def _follow_until(camera: Camera, **expected: int) -> None:
    """Capture frames until the camera's stats show ``expected`` (the follower is async)."""
    ticks = iter(range(10**6))

    def probe() -> dict[str, int]:
        index = next(ticks)
        camera.capture_one(index, index / 25.0)
        return {name: getattr(camera.stats, name) for name in expected}

    eventually(probe, lambda seen: seen == expected, timeout_s=20.0)


def test_a_forged_far_future_epoch_neither_locks_a_camera_nor_shadows_real_assignments(
    kafka_topics: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    contract = Contract.of(kafka_topics)
    control = Producer(producer_config(contract, client_id="forger"))
    follower = AssignmentFollower(contract, max_skew_s=kafka_topics.camera.epoch_skew_s).start()
    camera = _camera(contract, follower, "cam-forged")
    try:
        caplog.set_level(logging.WARNING)
        forged = Assignment(source="cam-forged", quality=320, epoch=FORGED_EPOCH, reason="x")
        publish_assignment(control, contract, forged)
        first = Assignment(source="cam-forged", quality=416, epoch=_now_ms(), reason="slot 1")
        publish_assignment(control, contract, first)
        _follow_until(camera, quality=416, epoch=first.epoch)

        # The control agent's next decision still switches the camera.
        second = Assignment(source="cam-forged", quality=320, epoch=_now_ms() + 1, reason="2")
        publish_assignment(control, contract, second)
        _follow_until(camera, quality=320, epoch=second.epoch)

        # Forging again changes nothing, and is said once per source, not per record.
        publish_assignment(control, contract, forged)
        publish_assignment(control, contract, forged.model_copy(update={"epoch": 2**62}))
        third = Assignment(source="cam-forged", quality=512, epoch=_now_ms() + 2, reason="3")
        publish_assignment(control, contract, third)
        _follow_until(camera, quality=512, epoch=third.epoch)
    finally:
        follower.stop()
        camera.producer.flush(10)
    warnings = [r.getMessage() for r in caplog.records if "ahead of" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "cam-forged" in warnings[0] and str(FORGED_EPOCH) in warnings[0]

    # A camera that starts after the forgery reads the topic from its beginning.
    fresh = AssignmentFollower(contract, max_skew_s=kafka_topics.camera.epoch_skew_s).start()
    camera = _camera(contract, fresh, "cam-forged")
    try:
        _follow_until(camera, quality=512, epoch=third.epoch)
    finally:
        fresh.stop()
        camera.producer.flush(10)


def test_an_epoch_within_the_skew_is_followed_and_then_superseded(kafka_topics: Settings) -> None:
    # A controller whose clock runs a little ahead of the camera's is obeyed (the bound
    # is the skew, not the camera's clock itself); its later decisions still win.
    contract = Contract.of(kafka_topics)
    control = Producer(producer_config(contract, client_id="controller"))
    skew_s = 5.0
    follower = AssignmentFollower(contract, max_skew_s=skew_s).start()
    camera = _camera(contract, follower, "cam-ahead")
    try:
        ahead = Assignment(source="cam-ahead", quality=320, epoch=_now_ms() + 2_000)
        publish_assignment(control, contract, ahead)
        _follow_until(camera, quality=320, epoch=ahead.epoch)
        later = Assignment(source="cam-ahead", quality=416, epoch=ahead.epoch + 1)
        publish_assignment(control, contract, later)
        _follow_until(camera, quality=416, epoch=later.epoch)
    finally:
        follower.stop()
        camera.producer.flush(10)


def test_the_skew_is_a_setting_and_must_be_positive(settings: Settings) -> None:
    from tierflow.errors import ConfigError
    from tierflow.settings import load_settings

    assert settings.camera.epoch_skew_s > 0
    assert load_settings(camera={"epoch_skew_s": 2.5}).camera.epoch_skew_s == 2.5
    with pytest.raises(ConfigError, match="epoch_skew_s"):
        load_settings(camera={"epoch_skew_s": 0})

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from tierflow.streams.capture import (
    Captured,
    CaptureError,
    FolderSource,
    Reconnecting,
    SceneSource,
    Skipped,
    VideoSource,
    open_source,
)


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(n)]


def test_scene_spec_gives_a_deterministic_scene_with_truth() -> None:
    source = open_source("scene:4", scene_size=1024)
    assert isinstance(source, SceneSource)
    first = source.read(0, 1.5)
    again = SceneSource(4, 1024).read(0, 1.5)
    assert first.truth is not None and len(first.truth) > 0
    np.testing.assert_array_equal(first.image, again.image)


def test_folder_is_read_in_name_order_then_ends_or_loops(tmp_path: Path) -> None:
    for i, frame in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), frame)
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path))
    assert isinstance(source, FolderSource)
    means = [float(source.read(i, 0).image.mean()) for i in range(3)]  # type: ignore[union-attr]
    assert means == [0.0, 30.0, 60.0]
    assert source.read(3, 0) is None
    looping = open_source(str(tmp_path), loop=True)
    fifth = looping.read(4, 0)
    assert fifth is not None and float(fifth.image.mean()) == 30.0


def test_video_file_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for frame in _frames(5):
        writer.write(frame)
    writer.release()
    source = open_source(str(path))
    assert isinstance(source, VideoSource) and not source.live
    read = [source.read(i, 0) for i in range(6)]
    assert all(r is not None for r in read[:5]) and read[5] is None
    assert read[0] is not None and read[0].image.shape == (48, 64, 3)


@pytest.mark.parametrize("spec", ["nothing-here.mp4", "scene:x", "ftp://host/x"])
def test_unknown_specs_name_what_is_accepted(spec: str) -> None:
    with pytest.raises(CaptureError, match="scene:SEED"):
        open_source(spec)


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no images"):
        open_source(str(tmp_path))


class FlakyStream:
    """A live source that fails a given number of times before delivering frames."""

    live = True
    description = "flaky"

    def __init__(self, failures: list[int]) -> None:
        self.failures = failures

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured | None:
        if self.failures[0] > 0:
            self.failures[0] -= 1
            msg = "stream lost"
            raise CaptureError(msg)
        return Captured(np.zeros((8, 8, 3), np.uint8))

    def skip(self, index: int, t_s: float, quality: int) -> Skipped | None:
        return None if self.read(index, t_s) is None else Skipped()

    def close(self) -> None:
        pass


def test_a_lost_live_stream_reconnects_with_backoff() -> None:
    failures = [3]
    opened: list[FlakyStream] = []

    def opener() -> FlakyStream:
        opened.append(FlakyStream(failures))
        return opened[-1]

    source = Reconnecting(opener, threading.Event(), max_backoff_s=0.02, initial_backoff_s=0.005)
    assert source.read(0, 0.0) is not None
    assert source.reconnects == 3
    assert len(opened) == 4


def test_reconnecting_gives_up_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    source = Reconnecting(lambda: FlakyStream([10**6]), stop, initial_backoff_s=0.001)
    assert source.read(0, 0.0) is None

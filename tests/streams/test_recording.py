"""Recordings on disk: deterministic by seed, checked on open, read back as camera input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tierflow.settings import Settings
from tierflow.streams.capture import Captured, SceneSource
from tierflow.streams.recording import (
    DATA,
    INDEX,
    MANIFEST,
    Recording,
    RecordingError,
    RecordingSource,
    RecordingWriter,
    record_cameras,
)
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta


def _record(folder: Path, settings: Settings, frames: int = 6, seed: int = 3) -> dict[str, object]:
    sources = {f"cam-{i}": SceneSource(seed + i, 512) for i in range(2)}
    return record_cameras(folder, Contract.of(settings), sources, frames, 5.0, 320)


def test_one_seed_gives_the_same_recording_byte_for_byte(
    tmp_path: Path, settings: Settings
) -> None:
    a = _record(tmp_path / "a", settings)
    b = _record(tmp_path / "b", settings)
    c = _record(tmp_path / "c", settings, seed=4)
    assert a["sha256"] == b["sha256"] != c["sha256"]
    assert (tmp_path / "a" / DATA).read_bytes() == (tmp_path / "b" / DATA).read_bytes()


def test_manifest_states_sources_qualities_counts_span_and_rate(
    tmp_path: Path, settings: Settings
) -> None:
    manifest = _record(tmp_path / "r", settings, frames=6)
    assert manifest["frames"] == 12
    assert manifest["qualities"] == {"320": 12}
    assert manifest["span_s"] == pytest.approx(1.0)  # frames 0..5 at 5 fps
    sources = manifest["sources"]
    assert isinstance(sources, dict)
    assert set(sources) == {"cam-0", "cam-1"}
    assert sources["cam-0"]["frames"] == 6
    assert sources["cam-0"]["fps"] == pytest.approx(5.0)
    on_disk = json.loads((tmp_path / "r" / MANIFEST).read_text())
    assert on_disk == manifest
    lines = (tmp_path / "r" / INDEX).read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["source"] == "cam-0"


def test_an_altered_recording_is_refused(tmp_path: Path, settings: Settings) -> None:
    _record(tmp_path / "r", settings)
    data = tmp_path / "r" / DATA
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(RecordingError, match="altered"):
        Recording(tmp_path / "r")


def test_not_a_recording_and_an_existing_one_are_named(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(RecordingError, match=r"no manifest\.json"):
        Recording(tmp_path)
    _record(tmp_path / "r", settings)
    with pytest.raises(RecordingError, match="already holds a recording"):
        RecordingWriter(tmp_path / "r", "cameras")
    manifest = tmp_path / "r" / MANIFEST
    manifest.write_text(json.dumps({"format": "other", "version": 9}))
    with pytest.raises(RecordingError, match="not tierflow-recording v1"):
        Recording(tmp_path / "r")


def test_source_gives_recorded_frames_forwardable_and_truth_at_any_size(
    tmp_path: Path, settings: Settings
) -> None:
    _record(tmp_path / "r", settings, frames=4)
    recording = Recording(tmp_path / "r")
    source = RecordingSource(recording, "cam-1", Contract.of(settings))
    first = source.read(0, 0.0, 320)
    assert first is not None
    assert first.image.shape[:2] == (320, 320)
    assert first.encoded == recording.value(recording.by_source["cam-1"][0])
    assert first.truth is not None and first.truth.image_size == (320, 320)
    skipped = source.skip(1, 0.2, 160)
    assert skipped is not None and skipped.truth is not None
    assert skipped.truth.image_size == (160, 160)
    again = source.read(1, 0.2, 320)
    assert again is not None and again.truth is not None
    np.testing.assert_allclose(skipped.truth.xyxy * 2, again.truth.xyxy, rtol=1e-5)
    assert source.read(4, 0.8) is None
    looping = RecordingSource(recording, "cam-1", Contract.of(settings), loop=True)
    wrapped = looping.read(4, 0.8)
    assert wrapped is not None and wrapped.encoded == first.encoded
    with pytest.raises(RecordingError, match="no source 'cam-9'"):
        RecordingSource(recording, "cam-9", Contract.of(settings))
    assert recording.offsets_s("cam-0") == pytest.approx([0.0, 0.2, 0.4, 0.6])
    recording.close()
    assert recording.frames[0].sequence == 0


def test_a_failed_recording_leaves_nothing_that_looks_like_one(
    tmp_path: Path, settings: Settings
) -> None:
    class Broken(SceneSource):
        def read(self, index: int, t_s: float, quality: int | None = None) -> Captured:
            if index == 2:
                raise KeyboardInterrupt  # Ctrl-C halfway
            return super().read(index, t_s, quality)

    with pytest.raises(KeyboardInterrupt):
        record_cameras(tmp_path / "r", Contract.of(settings), {"c": Broken(1, 512)}, 5, 5.0, 320)
    assert not any((tmp_path / "r").iterdir())
    _record(tmp_path / "r", settings)  # and the folder can be used again
    (tmp_path / "r" / INDEX).unlink()
    with pytest.raises(RecordingError, match="incomplete"):
        Recording(tmp_path / "r")


def test_sources_share_one_clock_from_the_recordings_first_frame(
    tmp_path: Path, settings: Settings
) -> None:
    contract = Contract.of(settings)
    with RecordingWriter(tmp_path / "r", "test") as writer:
        for source, start_s in (("early", 0.0), ("late", 10.0)):
            for i in range(3):
                image, _ = SceneSource(0, 256).scene.render_at(0.0, 256)
                meta = FrameMeta(source, i, round((start_s + i * 0.5) * 1e9), 256)
                value, headers = contract.codec.encode(image, meta)
                writer.add(value, dict(headers))
        writer.add(value, dict(headers))  # the last frame twice, as a producer retry does
    with Recording(tmp_path / "r") as recording:
        assert recording.offsets_s("late") == pytest.approx([10.0, 10.5, 11.0, 11.0])
        assert recording.offsets_s("early") == pytest.approx([0.0, 0.5, 1.0])
        assert recording.fps("late") == pytest.approx(2.0)  # the repeat is no interval
        assert recording.span_s() == pytest.approx(11.5)

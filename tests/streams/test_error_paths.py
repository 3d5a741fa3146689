"""Error paths a new user meets (issue 11, part 9): one line naming the fault, exit 2.

Each case runs ``tierflow`` as a separate process, as a user would. An unreachable broker
is a closed local port (nothing listens on 127.0.0.1:1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.cli import tierflow
from tests.waiting import eventually
from tierflow.errors import ConfigError
from tierflow.settings import Settings, load_settings
from tierflow.streams.capture import Captured, CaptureError, Reconnecting, Skipped, is_live

UNREACHABLE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "TIERFLOW_CONNECT_TIMEOUT_S": "1"}


def _one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one ``tierflow: error:`` line of a failed run, after checking its shape."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "%3|" not in result.stderr, "librdkafka's own log reached the user"
    errors = [line for line in result.stderr.splitlines() if line.startswith("tierflow: error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "no-follow"])
def test_a_camera_with_no_broker_says_so_in_one_line(follow: bool) -> None:
    # Was: a traceback and 226 librdkafka lines; --no-follow exited 0 with "produced": 0.
    flags = [] if follow else ["--no-follow"]
    result = tierflow("camera", "--frames", "3", *flags, env=UNREACHABLE, timeout_s=60)
    _one_line_error(result, "127.0.0.1:1")
    assert len(result.stderr.splitlines()) <= 3, result.stderr
    assert result.stdout == ""  # no summary claiming a run that sent nothing


def test_status_with_no_broker_says_so_in_one_line() -> None:
    # Was: an aiokafka traceback.
    result = tierflow("status", "--json", "--duration", "1", env=UNREACHABLE, timeout_s=60)
    _one_line_error(result, "127.0.0.1:1")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--fps", "-3", "--frames", "1"], "fps"),  # was: ran for ever, skipped_ticks -3510
        (["--fps", "0"], "fps"),
        (["--quality", "0"], "quality"),
        (["--frames", "0"], "frames"),
        (["--duration", "-1"], "duration"),
    ],
    ids=["fps-negative", "fps-zero", "quality-zero", "frames-zero", "duration-negative"],
)
def test_camera_options_out_of_range_are_refused_before_anything_runs(
    flags: list[str], named: str
) -> None:
    # Checked before any broker is dialled: the unreachable one would otherwise answer.
    result = tierflow("camera", *flags, env=UNREACHABLE, timeout_s=30)
    _one_line_error(result, named)


@pytest.mark.kafka
def test_a_camera_quality_without_a_topic_is_refused(kafka_topics: Settings) -> None:
    # Was: hung (frames queued for frames.raw.333, which does not exist).
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_topics.bootstrap,
        "TIERFLOW_TOPICS__PREFIX": kafka_topics.topics.prefix,
    }
    result = tierflow("camera", "--quality", "333", "--frames", "1", env=env, timeout_s=30)
    line = _one_line_error(result, "333")
    assert all(str(q) in line for q in kafka_topics.topics.qualities), line


@pytest.mark.kafka
def test_a_camera_whose_topics_were_never_created_is_refused(kafka_settings: Settings) -> None:
    # --no-follow reads no control topic, so the frame topic itself is checked.
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap,
        "TIERFLOW_TOPICS__PREFIX": kafka_settings.topics.prefix,
    }
    result = tierflow("camera", "--no-follow", "--frames", "1", env=env, timeout_s=30)
    _one_line_error(result, "topics create")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--cameras", "0"], "cameras"),  # was: exit 0 having done nothing
        (["--fps", "-1"], "fps"),
        (["--duration", "0"], "duration"),
    ],
    ids=["no-cameras", "fps-negative", "duration-zero"],
)
def test_up_options_out_of_range_are_refused_before_anything_starts(
    flags: list[str], named: str
) -> None:
    result = tierflow("up", *flags, env=UNREACHABLE, timeout_s=30)
    _one_line_error(result, named)
    assert "using the Kafka cluster" not in result.stderr


class NotUpYet:
    """A live stream that cannot be opened the first ``failures`` times."""

    live = True
    description = "video:rtsp://camera"

    def read(self, index: int, t_s: float, quality: int | None = None) -> Captured:
        import numpy as np

        return Captured(np.zeros((8, 8, 3), np.uint8))

    def skip(self, index: int, t_s: float, quality: int) -> Skipped:
        return Skipped()

    def close(self) -> None:
        pass


def test_a_stream_not_up_yet_is_retried_with_backoff() -> None:
    # Was: the first failed open ended the camera at once.
    failures = [3]

    def opener() -> NotUpYet:
        if failures[0] > 0:
            failures[0] -= 1
            msg = "cannot open 'rtsp://camera' with OpenCV"
            raise CaptureError(msg)
        return NotUpYet()

    source = Reconnecting(
        opener, threading.Event(), max_backoff_s=0.02, initial_backoff_s=0.005, live=True
    )
    assert source.source is None and source.live
    assert source.read(0, 0.0) is not None
    assert source.description == "video:rtsp://camera"
    assert failures == [0]
    assert source.reconnects == 0  # it connected once, for the first time


def test_a_file_that_cannot_be_opened_still_fails_at_once() -> None:
    def opener() -> NotUpYet:
        msg = "cannot open 'clip.mp4' with OpenCV"
        raise CaptureError(msg)

    with pytest.raises(CaptureError, match=r"clip\.mp4"):
        Reconnecting(opener, threading.Event(), live=False)


def test_only_streams_and_devices_are_live() -> None:
    assert is_live("rtsp://10.0.0.5/stream") and is_live("http://cam/mjpg") and is_live("device:0")
    assert is_live("/dev/video2")
    assert not is_live("scene:3") and not is_live("clip.mp4") and not is_live("frames/")


@pytest.mark.kafka
def test_a_camera_on_a_stream_not_up_yet_waits_for_it(
    kafka_topics: Settings, tmp_path: Path
) -> None:
    # The stream never comes up here: the camera retries with growing delays until SIGTERM.
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_topics.bootstrap,
        "TIERFLOW_TOPICS__PREFIX": kafka_topics.topics.prefix,
    }
    log = tmp_path / "camera.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tierflow.streams.cli", "camera", "--no-follow"),
                *("--source", "rtsp://127.0.0.1:1/stream", "--id", f"rtsp-{uuid.uuid4().hex[:6]}"),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **env},
        )
        try:
            eventually(log.read_text, lambda text: text.count("retrying in") >= 2, timeout_s=30)
            assert process.poll() is None, "the camera gave up on a stream that is not up yet"
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "retrying in 0.5 s" in text and "retrying in 1.0 s" in text, text
    assert process.returncode == 0, text
    assert json.loads(out)["captured"] == 0


def test_a_misspelled_settings_section_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Was: TIERFLOW_CAMRA__FPS=5 silently ignored.
    monkeypatch.setenv("TIERFLOW_CAMRA__FPS", "5")
    with pytest.raises(ConfigError, match=r"TIERFLOW_CAMRA__FPS.*camera"):
        load_settings()


def test_a_misspelled_section_is_refused_by_the_command() -> None:
    result = tierflow("camera", "--frames", "1", env={**UNREACHABLE, "TIERFLOW_CAMRA__FPS": "5"})
    _one_line_error(result, "TIERFLOW_CAMRA__FPS", "camera")


def test_known_sections_and_whole_section_json_are_still_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIERFLOW_CAMERA__FPS", "5")
    monkeypatch.setenv("TIERFLOW_DATAPLANE", '{"tier": "fog"}')
    monkeypatch.delenv("TIERFLOW_CONFIG", raising=False)
    settings = load_settings()
    assert settings.camera.fps == 5.0
    assert settings.dataplane.tier == "fog"


def test_bootstrap_with_the_prefix_is_refused_with_the_name_that_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # TIERFLOW_BOOTSTRAP_SERVERS was ignored as well: the field reads KAFKA_BOOTSTRAP_SERVERS.
    monkeypatch.setenv("TIERFLOW_BOOTSTRAP_SERVERS", "broker:9092")
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        load_settings()

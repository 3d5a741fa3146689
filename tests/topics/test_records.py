from __future__ import annotations

import pytest

from tierflow.topics.envelope import FrameMeta
from tierflow.topics.records import (
    Assignment,
    FrameRecord,
    Outcome,
    RecordError,
    ServiceAnnouncement,
    parse_record,
)


@pytest.mark.parametrize(
    ("kind", "data", "named"),
    [
        (Assignment, b'{"source": "c", "quality": -1, "epoch": 0}', "quality"),
        (Assignment, b'{"quality": 512, "epoch": 0}', "source"),
        (
            ServiceAnnouncement,
            b'{"service_id": "x", "stage": "paint", "topic": "t", "heartbeat_ns": 1, "ttl_s": 1}',
            "stage",
        ),
        (FrameRecord, None, "tombstone"),
    ],
)
def test_malformed_records_name_the_field(kind: type, data: bytes | None, named: str) -> None:
    with pytest.raises(RecordError, match=named):
        parse_record(kind, data)


def test_stage_and_transfer_times_come_from_the_stamps() -> None:
    stamps = {
        "camera.out": 1_000_000,
        "resize.in": 4_000_000,
        "resize.out": 6_000_000,
        "detect.in": 7_000_000,
        "detect.out": 57_000_000,
        "draw.in": 60_000_000,
    }
    meta = FrameMeta("c", 1, capture_ns=0, quality=512, stamps=stamps)
    record = FrameRecord.of(meta, Outcome.PROCESSED, "draw", now_ns=100_000_000)
    assert record.latency_s == pytest.approx(0.1)
    assert record.stage_s == pytest.approx({"resize": 0.002, "detect": 0.05})
    assert record.transfer_s == pytest.approx({"resize": 0.003, "detect": 0.001, "draw": 0.003})


def test_a_record_without_readable_headers_keeps_the_key_as_source() -> None:
    record = FrameRecord.of(
        None, Outcome.DEADLETTER, "resize", source="cam-9", reason="missing-header"
    )
    assert (record.source, record.sequence, record.reason) == ("cam-9", -1, "missing-header")

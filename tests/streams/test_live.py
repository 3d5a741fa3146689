"""The live view and the end-of-run summary of ``tierflow up``."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from tierflow.settings import Settings
from tierflow.streams.accounting import SourceTally
from tierflow.streams.camera import Camera
from tierflow.streams.capture import SceneSource
from tierflow.streams.live import Rates, live_table, plain_lines, reasons, summary_table
from tierflow.topics.contract import Contract
from tierflow.topics.records import FrameRecord, Outcome

from .test_camera import _unreachable_producer


def rendered(table: Table) -> str:
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(table)
    return out.getvalue()


def camera(settings: Settings, source: str, fps: float = 25.0) -> Camera:
    producer = _unreachable_producer(queue_kbytes=1024)
    return Camera(Contract.of(settings), source, SceneSource(0, 256), producer, None, fps, 512)


def test_a_camera_below_its_frame_rate_is_marked_and_totals_add_up(settings: Settings) -> None:
    slow, fast = camera(settings, "slow"), camera(settings, "fast")
    rates = Rates(window_s=5.0)
    rates.update([slow, fast], 0.0)
    slow.stats.captured, slow.stats.produced = 85, 80  # 17 fps of 25
    fast.stats.captured, fast.stats.produced = 125, 60  # 25 fps captured, 12 sent
    rates.update([slow, fast], 5.0)
    assert rates.rate("slow") == (17.0, 16.0)
    tally = SourceTally()
    drop = FrameRecord(
        source="slow", sequence=1, quality=512, capture_ns=1, outcome=Outcome.DROPPED,
        stage="detect", policy="lag", latency_s=0.1,
    )  # fmt: skip
    tally.add(drop, 0.0)
    text = rendered(live_table({"slow": tally}, [slow, fast], rates, 5.0))
    slow_row = next(line for line in text.splitlines() if "slow" in line)
    fast_row = next(line for line in text.splitlines() if "fast" in line)
    assert "17.0/25 !" in slow_row and "lag 1" in slow_row
    assert "25.0/25" in fast_row and "!" not in fast_row
    total = next(line for line in text.splitlines() if line.strip("│ ").startswith("total"))
    assert "42.0" in total and "28.0" in total  # captured 17 + 25, sent 16 + 12
    assert "last 5 s" in text and "since the start" in text
    lines = plain_lines({"slow": tally}, [slow], rates, 5.0)
    assert lines[0].startswith("**PERF 5 s slow: 512 px, capture 17.0/25 fps (below")


def test_no_rate_is_shown_before_a_full_window(settings: Settings) -> None:
    cam = camera(settings, "c")
    rates = Rates(window_s=5.0)
    rates.update([cam], 0.0)
    rates.update([cam], 1.0)
    assert rates.rate("c") is None


def test_drops_are_listed_by_reason_largest_first() -> None:
    assert reasons({"lag": 2, "superseded": 9, "queue-full": 0}) == "superseded 9, lag 2"
    assert reasons({}) == "0"


def test_the_summary_table_has_a_row_per_source_and_the_totals() -> None:
    entry = {
        "captured": 10, "sent": 8, "sampled": 2, "processed": 7, "dropped": {"lag": 1},
        "camera_dropped": {}, "deadlettered": 0, "unaccounted": 0, "latency_p50_s": 0.1,
        "latency_p99_s": 0.4, "f1": 0.9, "f1_carry_forward": 0.8, "quality": 416, "truth": "MOT gt.txt",
    }  # fmt: skip
    summary = {"run_id": "ab12", "duration_s": 9.6, "sources": {"lobby": entry}, "totals": entry}
    text = rendered(summary_table(summary))
    assert "tierflow up ab12 - 10 s" in text
    assert "lobby" in text and "total" in text and "lag 1" in text and "0.900" in text
    assert "MOT gt.txt" in text

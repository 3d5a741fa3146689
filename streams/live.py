"""What ``tierflow up`` shows while it runs and when it ends.

The live table says which columns are windowed (the last ``RATE_WINDOW_S`` seconds) and
which count since the start, marks a camera that does not reach its frame rate, names the
drops by reason and the controller's reason for the current quality, and ends with a
totals row. When stderr is not a terminal (a log file, CI), a plain line per source is
printed every ``PLAIN_EVERY_S`` seconds instead (DeepStream's ``**PERF`` habit), so the
log shows progress without terminal control codes. At the end :func:`summary_table` is
the human summary (``--json`` prints the JSON document instead).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from tierflow.streams.accounting import RATE_WINDOW_S, SourceTally
from tierflow.streams.camera import Camera

PLAIN_EVERY_S = 5.0
"""Seconds between plain progress lines when the output is not a terminal."""
SHORT_OF = 0.9
"""A camera capturing below this share of its native frame rate is marked."""


@dataclass
class Rates:
    """Frames per second of each camera's counters over the last ``window_s`` seconds."""

    window_s: float = RATE_WINDOW_S
    samples: dict[str, deque[tuple[float, int, int]]] = field(default_factory=dict)

    def update(self, cameras: Iterable[Camera], now_s: float) -> None:
        """Take a sample of every camera's captured and produced counts at ``now_s``."""
        for cam in cameras:
            kept = self.samples.setdefault(cam.source_id, deque())
            kept.append((now_s, cam.stats.captured, cam.stats.produced))
            while len(kept) > 2 and kept[1][0] <= now_s - self.window_s:
                kept.popleft()

    def rate(self, source: str) -> tuple[float, float] | None:
        """(captured, produced) frames/s over the window; None before a full window."""
        kept = self.samples.get(source)
        if not kept or len(kept) < 2 or kept[-1][0] - kept[0][0] < self.window_s * 0.8:
            return None
        (t0, c0, p0), (t1, c1, p1) = kept[0], kept[-1]
        return (c1 - c0) / (t1 - t0), (p1 - p0) / (t1 - t0)


def short_of_target(cam: Camera, rates: Rates) -> float | None:
    """The captured rate when it is below ``SHORT_OF`` of the native rate, else None."""
    rate = rates.rate(cam.source_id)
    if rate is None or not cam.stats.admitted:
        return None
    return rate[0] if rate[0] < SHORT_OF * cam.fps else None


def reasons(counts: Mapping[str, int]) -> str:
    """``superseded 12, lag 3``: drops by policy, largest first; ``0`` when none."""
    kept = [(n, name) for name, n in counts.items() if n]
    return ", ".join(f"{name} {n}" for n, name in sorted(kept, reverse=True)) or "0"


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def live_table(
    tallies: Mapping[str, SourceTally], cams: list[Camera], rates: Rates, elapsed_s: float
) -> Table:
    """The per-source table shown while running, with a totals row."""
    window = f"{RATE_WINDOW_S:g} s"
    table = Table(
        title=f"tierflow up - {elapsed_s:.0f} s",
        caption=f"fps: last {window}; p50, p99, F1, drops: since the start. "
        "! = a camera below 90 % of its frame rate",
        expand=False,
    )
    columns = ["source", "quality", "why", f"capture fps ({window})", f"sent fps ({window})"]
    columns += [f"processed fps ({window})", "p50 s", "p99 s", "F1", "dropped", "deadletter"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("source", "why") else "right")
    now = time.monotonic()
    total_drops: Counter[str] = Counter()
    total_dead = 0
    for cam in cams:
        tally = tallies.get(cam.source_id, SourceTally())
        rate = rates.rate(cam.source_id)
        short = short_of_target(cam, rates)
        captured = "-" if rate is None else f"{rate[0]:.1f}/{cam.fps:g}"
        drops = tally.dropped + cam.stats.dropped
        total_drops.update(drops)
        dead = sum(tally.deadlettered.values())
        total_dead += dead
        table.add_row(
            cam.source_id,
            str(cam.stats.quality),
            cam.stats.reason or "-",
            f"[red]{captured} ![/red]" if short is not None else captured,
            "-" if rate is None else f"{rate[1]:.1f}",
            f"{tally.fps_out(now):.1f}",
            _number(tally.percentile_s(50), 3),
            _number(tally.percentile_s(99), 3),
            _number(tally.f1, 2),
            reasons(drops),
            str(dead),
        )
    if len(cams) > 1:
        rows = [rates.rate(c.source_id) for c in cams]
        known = [r for r in rows if r is not None]
        out = sum(tallies.get(c.source_id, SourceTally()).fps_out(now) for c in cams)
        table.add_row(
            "total",
            "",
            "",
            f"{sum(r[0] for r in known):.1f}" if known else "-",
            f"{sum(r[1] for r in known):.1f}" if known else "-",
            f"{out:.1f}",
            "",
            "",
            "",
            reasons(total_drops),
            str(total_dead),
            style="bold",
        )
    return table


def plain_lines(
    tallies: Mapping[str, SourceTally], cams: list[Camera], rates: Rates, elapsed_s: float
) -> list[str]:
    """One line per source for a log: ``**PERF 35 s cam-0: 512 px, capture 24.8/25 fps...``."""
    now = time.monotonic()
    lines = []
    for cam in cams:
        tally = tallies.get(cam.source_id, SourceTally())
        rate = rates.rate(cam.source_id)
        short = " (below its frame rate)" if short_of_target(cam, rates) is not None else ""
        captured = "-" if rate is None else f"{rate[0]:.1f}/{cam.fps:g}"
        lines.append(
            f"**PERF {elapsed_s:.0f} s {cam.source_id}: {cam.stats.quality} px, capture "
            f"{captured} fps{short}, processed {tally.fps_out(now):.1f} fps (last "
            f"{RATE_WINDOW_S:g} s); since start: p50 {_number(tally.percentile_s(50), 3)} s, "
            f"p99 {_number(tally.percentile_s(99), 3)} s, F1 {_number(tally.f1, 2)}, "
            f"dropped {reasons(tally.dropped + cam.stats.dropped)}"
        )
    return lines


def summary_table(summary: Mapping[str, Any]) -> Table:
    """The end-of-run summary for people: one row per source and the totals."""
    table = Table(
        title=f"tierflow up {summary.get('run_id', '')} - {summary['duration_s']:.0f} s",
        caption="captured = sent + sampled + dropped at the camera; every sent frame ends "
        "processed, dropped by a named policy or deadlettered",
    )
    for column in (
        "source", "captured", "sent", "sampled", "processed", "dropped", "deadletter",
        "unaccounted", "p50 s", "p99 s", "F1", "F1 all frames", "truth", "quality",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == "source" else "right")
    rows = [*summary["sources"].items(), ("total", summary["totals"])]
    for source, entry in rows:
        drops = Counter(entry.get("dropped", {})) + Counter(entry.get("camera_dropped", {}))
        table.add_row(
            source,
            str(entry.get("captured", "")),
            str(entry.get("sent", "")),
            str(entry.get("sampled", "")),
            str(entry.get("processed", "")),
            reasons(drops),
            str(entry.get("deadlettered", "")),
            str(entry.get("unaccounted", "")),
            _number(entry.get("latency_p50_s"), 3),
            _number(entry.get("latency_p99_s"), 3),
            _number(entry.get("f1"), 3),
            _number(entry.get("f1_carry_forward"), 3),
            str(entry.get("truth", "")),
            str(entry.get("quality", "")),
            style="bold" if source == "total" else None,
        )
    return table

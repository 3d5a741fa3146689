"""``tierflow status``: the pipeline's numbers in a terminal, for users without Grafana.

It follows ``metrics.frames`` (from now on), ``control.registry`` and
``control.assignments`` and shows, over a sliding window: per source its quality, frames
per second processed, p50/p99 end-to-end latency, F1 and outcomes; per service its stage,
quality, model, node and heartbeat age.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Group
from rich.live import Live
from rich.table import Table

from tierflow.operators.vision.accuracy import MatchCounts
from tierflow.settings import Settings
from tierflow.streams.accounting import MetricsCollector, micro_f1
from tierflow.streams.assignments import AssignmentFollower
from tierflow.streams.discovery import registry_reader
from tierflow.streams.golden import GoldenPairs, Scored
from tierflow.topics.contract import Contract
from tierflow.topics.records import FrameRecord, Outcome


@dataclass
class Window:
    """The frame records of the last ``seconds``, and the golden scores of that time.

    Records are kept by arrival time; frames of golden sources are scored against their
    reference copies as both arrive (:class:`~tierflow.streams.golden.GoldenPairs`).
    """

    seconds: float
    records: deque[tuple[float, FrameRecord]] = field(default_factory=deque)
    scored: deque[tuple[float, Scored]] = field(default_factory=deque)
    pairs: GoldenPairs = field(default_factory=GoldenPairs)
    started: float = field(default_factory=time.monotonic)

    @property
    def span_s(self) -> float:
        """Seconds the window covers so far (less than ``seconds`` at first)."""
        return max(1e-3, min(self.seconds, time.monotonic() - self.started))

    def add(self, record: FrameRecord) -> None:
        """Fold in a record of metrics.frames: frames are kept, reference copies paired."""
        now = time.monotonic()
        if (scored := self.pairs.add(record)) is not None:
            self.scored.append((now, scored))
        if not record.reference:  # a golden source's probe, not a frame
            self.records.append((now, record))

    def current(self) -> list[FrameRecord]:
        """Records younger than the window."""
        horizon = time.monotonic() - self.seconds
        for kept in (self.records, self.scored):
            while kept and kept[0][0] < horizon:
                kept.popleft()
        return [r for _, r in self.records]

    def current_scored(self) -> list[Scored]:
        """Golden scores younger than the window (call after :meth:`current`)."""
        return [s for _, s in self.scored]


def summarise(
    records: list[FrameRecord], window_s: float, scored: Sequence[Scored] = ()
) -> dict[str, dict[str, Any]]:
    """Per source: quality, fps processed, p50/p99 latency, F1, outcomes in the window.

    F1 is over the records' own truth counts; a source without any (a golden source) takes
    it from its frames scored against reference copies, ``scored``.
    """
    golden: dict[str, MatchCounts] = {}
    for score in scored:
        golden[score.source] = golden.get(score.source, MatchCounts(0, 0, 0)) + score.counts
    by_source: dict[str, list[FrameRecord]] = {}
    for r in records:
        if r.sequence >= 0:
            by_source.setdefault(r.source, []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for source, items in sorted(by_source.items()):
        done = [r for r in items if r.outcome is Outcome.PROCESSED]
        latency = [r.latency_s for r in done]
        outcomes = Counter(
            r.outcome.value
            if r.outcome is Outcome.PROCESSED
            else f"{r.outcome.value}:{r.policy or r.reason}"
            for r in items
        )
        f1 = micro_f1(*(sum(getattr(r, k) or 0 for r in done) for k in ("tp", "fp", "fn")))
        if f1 is None and source in golden:
            f1 = micro_f1(*golden[source])
        out[source] = {
            "quality": items[-1].quality,
            "fps_out": round(len(done) / window_s, 2),
            "latency_p50_s": round(float(np.percentile(latency, 50)), 4) if latency else None,
            "latency_p99_s": round(float(np.percentile(latency, 99)), 4) if latency else None,
            "f1": None if f1 is None else round(f1, 4),
            "outcomes": dict(outcomes),
        }
    return out


class StatusView:
    """Follows the topics and renders the current state."""

    def __init__(self, contract: Contract, window_s: float, epoch_skew_s: float = 60.0) -> None:
        self.contract = contract
        self.epoch_skew_s = epoch_skew_s
        self.window = Window(window_s)
        self.collector = MetricsCollector(contract, on_record=self.window.add)
        self.registry = registry_reader(contract)
        self.assignments: AssignmentFollower | None = None

    async def start(self) -> None:
        """Start following."""
        await self.collector.start()
        await self.registry.start()
        await self.registry.caught_up()
        self.assignments = AssignmentFollower(self.contract, self.epoch_skew_s).start()

    async def stop(self) -> None:
        """Stop following."""
        await self.collector.stop()
        await self.registry.stop()
        if self.assignments is not None:
            self.assignments.stop()

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-able data."""
        now = time.time_ns()
        records = self.window.current()
        sources = summarise(records, self.window.span_s, self.window.current_scored())
        for source, entry in sources.items():
            assignment = self.assignments.get(source) if self.assignments else None
            entry["assigned"] = (
                None
                if assignment is None
                else {
                    "quality": assignment.quality,
                    "epoch": assignment.epoch,
                    "reason": assignment.reason,
                }
            )
        services = [
            {
                "service": s.service_id,
                "stage": s.stage,
                "quality": s.quality,
                "model": s.model,
                "node": s.node,
                "tier": s.tier,
                "capacity_fps": s.capacity_fps,
                "heartbeat_age_s": round((now - s.heartbeat_ns) / 1e9, 2),
            }
            for s in sorted(self.registry.view.live(now), key=lambda s: s.service_id)
        ]
        return {"window_s": self.window.seconds, "sources": sources, "services": services}

    def render(self) -> Group:
        """Two tables: sources and services."""
        state = self.snapshot()
        sources = Table(title=f"sources (last {state['window_s']:g} s)")
        for column in (
            "source",
            "quality",
            "assigned",
            "fps out",
            "p50 s",
            "p99 s",
            "F1",
            "outcomes",
        ):
            sources.add_column(
                column, justify="left" if column in ("source", "outcomes") else "right"
            )
        for name, s in state["sources"].items():
            assigned = s["assigned"]["quality"] if s["assigned"] else "-"
            sources.add_row(
                name,
                str(s["quality"]),
                str(assigned),
                f"{s['fps_out']:.1f}",
                "-" if s["latency_p50_s"] is None else f"{s['latency_p50_s']:.3f}",
                "-" if s["latency_p99_s"] is None else f"{s['latency_p99_s']:.3f}",
                "-" if s["f1"] is None else f"{s['f1']:.2f}",
                ", ".join(f"{k} {v}" for k, v in s["outcomes"].items()),
            )
        services = Table(title="services (control.registry)")
        for column in (
            "service",
            "stage",
            "quality",
            "model",
            "node",
            "tier",
            "capacity fps",
            "heartbeat",
        ):
            services.add_column(column)
        for s in state["services"]:
            capacity = "-" if s["capacity_fps"] is None else f"{s['capacity_fps']:.1f}"
            services.add_row(
                s["service"],
                s["stage"],
                str(s["quality"] or "-"),
                s["model"] or "-",
                s["node"],
                s["tier"],
                capacity,
                f"{s['heartbeat_age_s']:.1f} s ago",
            )
        return Group(sources, services)


async def run_status(
    settings: Settings, window_s: float, duration_s: float | None, live: bool
) -> dict[str, Any]:
    """Show the live view (until Ctrl-C or ``duration_s``); returns the last snapshot."""
    view = StatusView(Contract.of(settings), window_s, settings.camera.epoch_skew_s)
    await view.start()
    try:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        if live:
            with Live(view.render(), refresh_per_second=2) as screen:
                while deadline is None or time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    screen.update(view.render())
        elif deadline is not None:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return view.snapshot()
    finally:
        await view.stop()

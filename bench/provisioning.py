"""Provisioning by demand: Mode 1 against Mode 2 on a node with memory for two detectors.

On the local broker (started if down) or ``KAFKA_BOOTSTRAP_SERVERS``, per mode it runs a
node agent (``tierflow node``, offering ``--memory-mb`` through ``dataplane.memory_mb``) and
the control agent (``tierflow worker control`` with ``control.provision = demand``), then
cameras one after the other, each asking (``--no-follow``) for one quality: 320, 416, 512, then 416
again. Nothing serves a quality until its frames arrive; the back end then loads its
detector, evicting by the mode's rule (seed 003, §4.3): Mode 1 keeps idle detectors and
evicts the least recently used when memory runs out, Mode 2 unloads every idle one. The
last camera shows the trade-off: Mode 1 still has 416 loaded, Mode 2 must load it again.

Prints one JSON line: per mode and camera, frames produced, deadlettered ``no-consumer``
(waiting for their detector), processed, ``request_to_first_s`` (first frame captured to
first frame analysed), ``decision_to_first_s`` (the placement that added the detector
published to its first frame analysed; the thesis's Tables 6.4-6.5: 2.5 s for one model),
the evictions the control agent logged, and the accounting (every produced frame exactly
one outcome).

    .venv/bin/python bench/provisioning.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from tierflow.settings import load_settings
from tierflow.topics.contract import Contract
from tierflow.topics.records import (
    FrameRecord,
    Outcome,
    PlacementRecord,
    parse_frame_records,
    parse_record,
)
from tierflow.topics.snapshot import read_to_end

CLI = [sys.executable, "-m", "tierflow.streams.cli"]
REQUESTS = (320, 416, 512, 416)
EVICTED = re.compile(r"evicted (detect-\d+) from")
TARGET_DECISION_TO_FIRST_S = 2.5


def wait_for(probe: Any, timeout_s: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    msg = f"{what} not within {timeout_s} s"
    raise SystemExit(msg)


def placements(contract: Contract) -> list[PlacementRecord]:
    """Every placement record published so far, in order."""
    found: list[PlacementRecord] = []

    def handle(message: Message) -> None:
        if message.value() is not None:
            found.append(parse_record(PlacementRecord, message.value()))

    read_to_end(contract, [contract.names.placement], handle)
    return found


def outcomes(contract: Contract) -> list[FrameRecord]:
    """Every outcome record on metrics.frames so far."""
    found: list[FrameRecord] = []
    read_to_end(
        contract,
        [contract.names.metrics_frames],
        lambda m: found.extend(parse_frame_records(m.value())),
    )
    return found


def camera(env: dict[str, str], source: str, quality: int, frames: int, fps: float) -> int:
    """Run one camera asking for ``quality``; the frames the broker acknowledged."""
    out = subprocess.run(
        [*CLI, "camera", "--no-follow", "--id", source, "--quality", str(quality),
         "--fps", str(fps), "--frames", str(frames)],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    produced: int = json.loads(out.stdout.strip().splitlines()[-1])["produced"]
    return produced


def one_mode(mode: int, args: argparse.Namespace) -> dict[str, Any]:
    """The four requests against one back-end mode, in a prefix of its own."""
    work = Path(tempfile.mkdtemp(prefix=f"tierflow-provision-{mode}-"))
    prefix = f"provision-{mode}-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "TIERFLOW_TOPICS__PREFIX": prefix,
        "TIERFLOW_WORKERS__DATA_DIR": str(work / "workers"),
        "TIERFLOW_DATAPLANE__OUTPUT_DIR": str(work / "annotated"),
        "TIERFLOW_DATAPLANE__NODE": "edge",
        "TIERFLOW_DATAPLANE__MEMORY_MB": str(args.memory_mb),
        "TIERFLOW_CONTROL__PROVISION": "demand",
        "TIERFLOW_CONTROL__PLACEMENT_MODE": str(mode),
        "TIERFLOW_CONTROL__DEMAND_S": str(args.demand_s),
        "TIERFLOW_CONTROL__DETECT_QUALITIES": json.dumps(sorted(set(REQUESTS))),
    }
    subprocess.run([*CLI, "topics", "create"], env=env, check=True, capture_output=True)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    settings = load_settings(topics={"prefix": prefix}, bootstrap_servers=bootstrap)
    contract = Contract.of(settings)
    control_log = work / "control.log"
    with (work / "node.log").open("wb") as n, control_log.open("wb") as c:
        node = subprocess.Popen(
            [*CLI, "-v", "node", "--node", "edge", "--log-dir", str(work / "logs")],
            stdout=n, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        control = subprocess.Popen(
            [*CLI, "-v", "worker", "control"], stdout=c, stderr=subprocess.STDOUT, env=env
        )
    produced: dict[str, int] = {}
    try:
        wait_for(lambda: "service running" in control_log.read_text(), 180, "the control agent")
        for stage in ("resize", "draw"):
            log = work / "logs" / f"{stage}.log"
            wait_for(lambda log=log: log.is_file() and "service running" in log.read_text(),
                     180, stage)  # fmt: skip
        for i, quality in enumerate(REQUESTS):
            source = f"cam-{i}-{quality}"
            produced[source] = camera(env, source, quality, args.frames, args.fps)
            time.sleep(args.demand_s + 1)  # this camera's quality leaves the demand window
        total = sum(produced.values())
        records = wait_for(lambda: (r := outcomes(contract)) and len(r) >= total and r, 180,
                           "every frame's outcome")  # fmt: skip
    finally:
        for process in (control, node):
            process.send_signal(signal.SIGTERM)
        for process in (control, node):
            process.wait(timeout=120)
    return summarise(mode, produced, records, placements(contract), control_log.read_text())


def summarise(
    mode: int,
    produced: dict[str, int],
    records: list[FrameRecord],
    placed: list[PlacementRecord],
    control_log: str,
) -> dict[str, Any]:
    """Per camera: waits for its detector, timings, accounting."""
    seen = Counter((r.source, r.sequence) for r in records)
    cameras = []
    for source, count in produced.items():
        mine = [r for r in records if r.source == source]
        quality = int(source.rsplit("-", 1)[1])
        processed = sorted(
            r.capture_ns / 1e9 + r.latency_s for r in mine if r.outcome is Outcome.PROCESSED
        )
        first_capture = min((r.capture_ns / 1e9 for r in mine), default=None)
        first_done = processed[0] if processed else None
        # The placement that added this detector after this camera began (None: it was
        # already placed, nothing had to be provisioned).
        task = f"detect-{quality}"
        added = [e for e in _additions(placed, task) if first_capture and e >= first_capture - 1]
        decision = min(added, default=None)
        cameras.append(
            {
                "source": source,
                "quality": quality,
                "produced": count,
                "no_consumer": sum(1 for r in mine if r.reason == "no-consumer"),
                "processed": len(processed),
                "request_to_first_s": _gap(first_capture, first_done),
                "decision_to_first_s": _gap(decision, first_done),
                "unaccounted": count - len({r.sequence for r in mine}),
                "duplicates": sum(seen[(source, s)] - 1 for s in {r.sequence for r in mine}),
            }
        )
    return {
        "mode": mode,
        "cameras": cameras,
        "evicted": EVICTED.findall(control_log),
        "final": sorted({p.task for p in placed if p.epoch == max(q.epoch for q in placed)}),
    }


def _additions(placed: list[PlacementRecord], task: str) -> list[float]:
    """When (s) a placement epoch had ``task`` and the epoch before it did not."""
    epochs: dict[int, set[str]] = {}
    for p in placed:
        epochs.setdefault(p.epoch, set()).add(p.task)
    added, before = [], False
    for epoch in sorted(epochs):
        now = task in epochs[epoch]
        if now and not before:
            added.append(epoch / 1e3)
        before = now
    return added


def _gap(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 2)


def main() -> None:
    """Both modes, one after the other on the same broker; print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per camera")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--demand-s", type=float, default=2.0, help="control.demand_s")
    parser.add_argument(
        "--memory-mb", type=float, default=2 * 256 + 2 * 1024 + 100,
        help="memory the node offers: resize and draw (256 MB each) and two detectors",
    )  # fmt: skip
    args = parser.parse_args()
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        subprocess.run([*CLI, "kafka", "up"], check=True, capture_output=True)  # the local one
    runs = [one_mode(mode, args) for mode in (1, 2)]
    decisions = [
        c["decision_to_first_s"]
        for run in runs
        for c in run["cameras"]
        if c["decision_to_first_s"] is not None
    ]
    print(
        json.dumps(
            {
                "bench": "provisioning",
                "runs": runs,
                "target_decision_to_first_s": TARGET_DECISION_TO_FIRST_S,
                "median_decision_to_first_s": sorted(decisions)[len(decisions) // 2]
                if decisions
                else None,
                "accounted": all(
                    c["unaccounted"] == 0 and c["duplicates"] == 0
                    for run in runs
                    for c in run["cameras"]
                ),
            }
        )
    )


if __name__ == "__main__":
    main()

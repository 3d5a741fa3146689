"""Downtime: ``tierflow up`` with a worker killed by SIGKILL, or its detector migrated.

For each worker named (and once with none killed, the baseline) it runs
``tierflow up --json --no-control`` at a fixed quality and frame rate on the local broker
(or ``KAFKA_BOOTSTRAP_SERVERS``), waits until annotated frames are stored, kills the worker
with SIGKILL (its pid is the one its log announced), and lets the run finish and drain.

Prints one JSON line: per run, the longest gap between processed frames of any source
(``max_gap_s``, the downtime a source saw), the restarts, and the accounting (every
produced frame exactly one outcome; ``duplicates`` are second outcome records the
accounting ignored). ``--migrate`` adds a planned migration: ``up`` runs as node ``a``, a
second node agent (``tierflow node --node b``) joins, and a newer placement moves the
detector to ``b``, which starts it; ``a`` stops its own once ``b``'s is live. Issue 10's
targets: crash gap <= 3 s, migration gap <= 1 s, 0 unaccounted; the migration run also
prints ``placement_to_first_frame_s``, from publishing the placement to the new node's
detector analysing its first frame (provisioning; the thesis's Tables 6.4-6.5: 2.5 s).

    .venv/bin/python bench/failover.py --workers detect-416 resize draw --migrate
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tierflow.settings import load_settings
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.records import PlacementRecord

RUNNING = re.compile(r"service running \(pid (\d+)\)")
TARGET_GAP_S = 3.0
TARGET_MIGRATION_GAP_S = 1.0


def first_pid(log: Path) -> int | None:
    """The pid a worker logged when it first came up."""
    found = RUNNING.findall(log.read_text(errors="replace")) if log.is_file() else []
    return int(found[0]) if found else None


def one_run(args: argparse.Namespace, victim: str | None, migrate: bool = False) -> dict[str, Any]:
    """One ``tierflow up`` run, with ``victim`` killed (or the detector moved) once frames flow."""
    work = Path(tempfile.mkdtemp(prefix="tierflow-failover-"))
    prefix = f"failover-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "TIERFLOW_TOPICS__PREFIX": prefix,
        "TIERFLOW_WORKERS__DATA_DIR": str(work / "workers"),
        "TIERFLOW_DATAPLANE__NODE": "a",
    }
    command = [
        sys.executable, "-m", "tierflow.streams.cli", "up", "--json", "--no-control",
        "--cameras", str(args.cameras), "--fps", str(args.fps),
        "--qualities", str(args.quality), "--quality", str(args.quality),
        "--duration", str(args.duration), "--output-dir", str(work / "annotated"),
    ]  # fmt: skip
    up = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    detect = f"detect-{args.quality}"
    acted = None
    node_b = None
    deadline = time.monotonic() + 180
    while (victim or migrate) and time.monotonic() < deadline and up.poll() is None:
        flowing = next((work / "annotated").rglob("*.jpg"), None) is not None
        pid = first_pid(work / "logs" / f"{victim or detect}.log")
        if flowing and pid is not None:
            if migrate:
                node_b = start_node_b(work, {**env, "TIERFLOW_DATAPLANE__NODE": "b"})
            time.sleep(args.kill_after)  # let the run settle before the fault
            if migrate:
                move_detector(prefix, detect)
            else:
                os.kill(pid, signal.SIGKILL)
            acted = time.time()
            break
        time.sleep(0.2)
    out, _ = up.communicate(timeout=args.duration + 300)
    if node_b is not None:
        node_b.send_signal(signal.SIGTERM)
        node_b.wait(timeout=60)
    summary: dict[str, Any] = json.loads(out)
    totals = summary["totals"]
    provision = None
    if migrate and acted is not None:
        first = first_analysed(work / "b" / f"{detect}.log")
        provision = None if first is None else round(first - acted, 2)
    return {
        "killed": victim if acted is not None and not migrate else None,
        "migrated": detect if acted is not None and migrate else None,
        "exit": up.returncode,
        "max_gap_s": totals["max_gap_s"],
        "placement_to_first_frame_s": provision,
        "restarts": {k: w["restarts"] for k, w in summary["workers"].items() if w["restarts"]},
        "produced": totals["produced"],
        "processed": totals["processed"],
        "dropped": totals["dropped"],
        "deadlettered": totals["deadletter_reasons"],
        "unaccounted": totals["unaccounted"],
        "duplicates": totals["duplicates"],
        "all_accounted": summary["all_accounted"],
    }


def first_analysed(log: Path) -> float | None:
    """When the detector's log says it analysed its first frame (epoch seconds)."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    for line in text.splitlines():
        if "first frame analysed" in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()  # the log's local time, as the bench's clock
    return None


def start_node_b(work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A second node agent, ``b``, on the same cluster and prefix."""
    command = [sys.executable, "-m", "tierflow.streams.cli", "node", "--log-dir", str(work / "b")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def move_detector(prefix: str, detect: str) -> None:
    """Publish a newer placement: resize and draw stay on ``a``, ``detect`` goes to ``b``."""
    contract = Contract.of(load_settings(topics={"prefix": prefix}))
    producer = Producer(producer_config(contract, "bench-placement"))
    epoch = time.time_ns() // 1_000_000
    for task in ("resize", detect, "draw"):
        node = "b" if task == detect else "a"
        record = PlacementRecord(
            instance=f"{task}#0", task=task, node=node, tier="edge", share=1.0, epoch=epoch,
            policy="bench",
        )  # fmt: skip
        producer.produce(contract.names.placement, key=record.instance, value=record.to_bytes())
    if producer.flush(10):
        sys.exit("the placement could not be published")


def main() -> None:
    """Parse the options, run the baseline and one run per victim, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", nargs="*", default=["detect-416"], help="workers to kill")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--quality", type=int, default=416)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--kill-after", type=float, default=8.0, help="s after frames flow")
    parser.add_argument("--migrate", action="store_true", help="also a planned migration")
    args = parser.parse_args()
    runs = [one_run(args, None), *(one_run(args, victim) for victim in args.workers)]
    if args.migrate:
        runs.append(one_run(args, None, migrate=True))
    crash = [r for r in runs if r["killed"]]
    moved = [r for r in runs if r["migrated"]]
    print(
        json.dumps(
            {
                "bench": "failover",
                "fps": args.fps,
                "cameras": args.cameras,
                "runs": runs,
                "target_gap_s": TARGET_GAP_S,
                "target_migration_gap_s": TARGET_MIGRATION_GAP_S,
                "met": {
                    "gap": all((r["max_gap_s"] or 0) <= TARGET_GAP_S for r in crash),
                    "migration_gap": all(
                        (r["max_gap_s"] or 0) <= TARGET_MIGRATION_GAP_S for r in moved
                    ),
                    "accounted": all(r["unaccounted"] == 0 and r["all_accounted"] for r in runs),
                },
            }
        )
    )


if __name__ == "__main__":
    main()

"""Crash downtime: ``tierflow up`` with one worker killed by SIGKILL mid-run.

For each worker named (and once with none killed, the baseline) it runs
``tierflow up --json --no-control`` at a fixed quality and frame rate on the local broker
(or ``KAFKA_BOOTSTRAP_SERVERS``), waits until annotated frames are stored, kills the worker
with SIGKILL (its pid is the one its log announced), and lets the run finish and drain.

Prints one JSON line: per run, the longest gap between processed frames of any source
(``max_gap_s``, the downtime a source saw), the restarts, and the accounting (every
produced frame exactly one outcome; ``duplicates`` are second outcome records the
accounting ignored). Issue 10's target: gap <= 3 s, 0 unaccounted.

    .venv/bin/python bench/failover.py --workers detect-416 resize draw
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
from pathlib import Path
from typing import Any

RUNNING = re.compile(r"service running \(pid (\d+)\)")
TARGET_GAP_S = 3.0


def first_pid(log: Path) -> int | None:
    """The pid a worker logged when it first came up."""
    found = RUNNING.findall(log.read_text(errors="replace")) if log.is_file() else []
    return int(found[0]) if found else None


def one_run(args: argparse.Namespace, victim: str | None) -> dict[str, Any]:
    """One ``tierflow up`` run, with ``victim`` killed once frames flow."""
    work = Path(tempfile.mkdtemp(prefix="tierflow-failover-"))
    env = {
        **os.environ,
        "TIERFLOW_TOPICS__PREFIX": f"failover-{uuid.uuid4().hex[:6]}",
        "TIERFLOW_WORKERS__DATA_DIR": str(work / "workers"),
    }
    command = [
        sys.executable, "-m", "tierflow.streams.cli", "up", "--json", "--no-control",
        "--cameras", str(args.cameras), "--fps", str(args.fps),
        "--qualities", str(args.quality), "--quality", str(args.quality),
        "--duration", str(args.duration), "--output-dir", str(work / "annotated"),
    ]  # fmt: skip
    up = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    killed_at = None
    if victim is not None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and up.poll() is None:
            flowing = next((work / "annotated").rglob("*.jpg"), None) is not None
            pid = first_pid(work / "logs" / f"{victim}.log")
            if flowing and pid is not None:
                time.sleep(args.kill_after)  # let the run settle before the fault
                os.kill(pid, signal.SIGKILL)
                killed_at = time.time()
                break
            time.sleep(0.2)
    out, _ = up.communicate(timeout=args.duration + 300)
    summary: dict[str, Any] = json.loads(out)
    totals = summary["totals"]
    return {
        "killed": victim if killed_at is not None else None,
        "exit": up.returncode,
        "max_gap_s": totals["max_gap_s"],
        "restarts": {k: w["restarts"] for k, w in summary["workers"].items() if w["restarts"]},
        "produced": totals["produced"],
        "processed": totals["processed"],
        "dropped": totals["dropped"],
        "deadlettered": totals["deadletter_reasons"],
        "unaccounted": totals["unaccounted"],
        "duplicates": totals["duplicates"],
        "all_accounted": summary["all_accounted"],
    }


def main() -> None:
    """Parse the options, run the baseline and one run per victim, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", nargs="*", default=["detect-416"], help="workers to kill")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--quality", type=int, default=416)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--kill-after", type=float, default=8.0, help="s after frames flow")
    args = parser.parse_args()
    runs = [one_run(args, None), *(one_run(args, victim) for victim in args.workers)]
    crash = [r for r in runs if r["killed"]]
    print(
        json.dumps(
            {
                "bench": "failover",
                "fps": args.fps,
                "cameras": args.cameras,
                "runs": runs,
                "target_gap_s": TARGET_GAP_S,
                "met": {
                    "gap": all((r["max_gap_s"] or 0) <= TARGET_GAP_S for r in crash),
                    "accounted": all(r["unaccounted"] == 0 and r["all_accounted"] for r in runs),
                },
            }
        )
    )


if __name__ == "__main__":
    main()

"""Broker failover: kill -9 of one of three local KRaft brokers while frames flow.

Runs the failover scenario of ``tests/infra/test_cluster.py`` (its own 3-broker cluster on
free ports; 2 generated cameras at 5 frames/s for 15 s through resize -> detect (null
backend) -> draw, every topic with 3 replicas and ``min.insync.replicas=2``, idempotent
``acks=all`` producers; the broker leading the most partitions is SIGKILLed once frames
flow) and prints the pause and the counts as one JSON line: ``pause_s`` is the longest gap
between processed frames of all sources (seconds), ``unaccounted`` frames without exactly
one outcome (must be 0), ``duplicates`` second outcome records the accounting ignored.
Re-using the test keeps one copy of the scenario.

    .venv/bin/python bench/broker_failover.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/infra/test_cluster.py::test_kill_9_of_a_broker_loses_no_frame"
MARK = "FAILOVER "


def one_run() -> dict[str, Any]:
    """Run the failover test once; its ``FAILOVER`` line, with the test's verdict."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        TEST,
        "-q",
        "-s",
        "-p",
        "no:warnings",
        "-p",
        "no:cacheprovider",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        msg = (
            f"the failover test printed no result (exit {done.returncode}):\n{done.stdout[-3000:]}"
        )
        raise SystemExit(msg)
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(MARK))
    result["test_passed"] = done.returncode == 0
    return result


def main() -> int:
    """Print one JSON line per run and a summary line; exit 1 if any run lost a frame."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repetitions (default 1)")
    args = parser.parse_args()
    runs = [one_run() for _ in range(max(1, args.runs))]
    for run in runs:
        print(json.dumps(run))
    pauses = sorted(r["pause_s"] for r in runs)
    summary = {
        "runs": len(runs),
        "pause_s_max": pauses[-1],
        "pause_s_median": pauses[len(pauses) // 2],
        "produced": sum(r["produced"] for r in runs),
        "unaccounted": sum(r["unaccounted"] for r in runs),
        "duplicates": sum(r["duplicates"] for r in runs),
        "all_passed": all(r["test_passed"] for r in runs),
    }
    print(json.dumps(summary))
    return 0 if summary["all_passed"] and summary["unaccounted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

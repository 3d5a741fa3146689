"""How soon Prometheus answers for a sample a worker exposes: tierflow up --prometheus.

Starts ``tierflow up --prometheus`` (2 cameras), watches the draw worker's /metrics for its
first end-to-end latency sample, and times until Prometheus's HTTP API returns it.

    .venv/bin/python bench/prometheus_freshness.py --port 9392

Needs a broker (KAFKA_BOOTSTRAP_SERVERS or the local one) and Debian's prometheus.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

from tierflow.topics.stages import StageName


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return reply.read()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=9392, help="Prometheus port")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "TIERFLOW_PROMETHEUS__PORT": str(args.port)}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tierflow.streams.cli",
            "up",
            "--cameras",
            "2",
            "--fps",
            "4",
            "--duration",
            "40",
            "--json",
            "--prometheus",
            "--output-dir",
            "/tmp/tierflow-bench-prom",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    exposed = queryable = None
    try:
        deadline = time.monotonic() + 120
        while queryable is None and time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                targets = json.loads(_get(f"{base}/api/v1/targets"))["data"]["activeTargets"]
            except OSError:
                continue
            if exposed is None:
                for t in targets:
                    if t["labels"].get("service") != StageName.DRAW:
                        continue
                    with_sample = [
                        line
                        for line in _get(t["scrapeUrl"]).decode().splitlines()
                        if line.startswith("tierflow_end_to_end_seconds_count")
                        and not line.endswith(" 0.0")
                    ]
                    if with_sample:
                        exposed = time.monotonic()
            if exposed is not None:
                query = urllib.parse.urlencode({"query": "sum(tierflow_end_to_end_seconds_count)"})
                if json.loads(_get(f"{base}/api/v1/query?{query}"))["data"]["result"]:
                    queryable = time.monotonic()
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait()
    if exposed is None or queryable is None:
        print("no end-to-end sample seen")
        return
    print(f"first end-to-end sample exposed -> returned by Prometheus: {queryable - exposed:.2f} s")


if __name__ == "__main__":
    main()

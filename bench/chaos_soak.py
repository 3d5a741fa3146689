"""Chaos soak: minutes of overload on a 3-broker cluster, detectors and a broker killed.

Starts its own 3-node KRaft cluster (free ports, a temporary state directory; topics with 3
replicas and ``min.insync.replicas=2``) and runs ``tierflow up --json`` on it with the
control agent on: ``--cameras`` generated cameras at ``--fps`` each, more than this
machine's detector can analyse (overload). While it runs:

- every ``--kill-every`` seconds, kill -9 of the detect worker that has used the most CPU
  (the node agent restarts it);
- at ``--broker-restart-at`` seconds, kill -9 of the broker leading the most partitions,
  started again ``--broker-down`` seconds later;
- every ``--sample-every`` seconds, the resident memory (VmRSS, MiB) of every process of
  the run (``up``, each worker, each broker) and the consumer lag in seconds each stage's
  worker reports (``tierflow_consumer_lag_seconds``, the age of the record it consumes,
  scraped from the ``/metrics`` endpoint its registry announcement names).

Prints one JSON line per sample (``"sample"``) and a summary line: faults injected, RSS
growth per process (last / first sample), the largest lag per stage, and ``up``'s own
accounting: ``unaccounted`` (frames without exactly one outcome, must be 0) and
``duplicates`` (second outcome records, must be 0). Exit 1 when either is not 0.

    .venv/bin/python bench/chaos_soak.py                      # 10 minutes (issue 11, part 11)
    .venv/bin/python bench/chaos_soak.py --duration 120 --kill-every 40 --broker-restart-at 70
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Message
from prometheus_client.parser import text_string_to_metric_families

from tierflow.infra.kafka.cluster import LocalCluster
from tierflow.infra.processes import cpu_ticks
from tierflow.settings import load_settings
from tierflow.topics.contract import Contract
from tierflow.topics.records import RecordError, ServiceAnnouncement, parse_record
from tierflow.topics.snapshot import read_to_end

CLI = [sys.executable, "-m", "tierflow.streams.cli"]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RUNNING = re.compile(rb"service running \(pid (\d+)\)")


def live_workers(logs: Path) -> dict[int, str]:
    """pid -> worker name (``detect-416``, ``resize``...) of every worker running now.

    A worker's log names its pid each time it comes up; the newest one counts. Command
    lines cannot tell: a restarted worker may be a pre-started spare that adopted the role.
    """
    found: dict[int, str] = {}
    for log in sorted(logs.glob("*.log")):
        pids = RUNNING.findall(log.read_bytes())
        if pids and rss_mib(pid := int(pids[-1])) is not None:
            found[pid] = log.stem
    return found


def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB, None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def stage_lags(contract: Contract) -> dict[str, float]:
    """The largest ``tierflow_consumer_lag_seconds`` each live service reports, per service."""
    latest: dict[str, ServiceAnnouncement] = {}

    def keep(message: Message) -> None:
        try:
            record = parse_record(ServiceAnnouncement, message.value())
        except RecordError:
            return
        latest[record.service_id] = record

    read_to_end(contract, [contract.names.registry], keep, timeout_s=20.0, client_id="soak")
    fresh_ns = time.time_ns() - 15 * 10**9
    lags: dict[str, float] = {}
    for record in latest.values():
        if record.metrics_port is None or record.heartbeat_ns < fresh_ns:
            continue
        name = record.stage if record.quality is None else f"{record.stage}-{record.quality}"
        url = f"http://{record.metrics_host or '127.0.0.1'}:{record.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=3) as reply:
                text = reply.read().decode()
        except OSError:
            continue
        values = [
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "tierflow_consumer_lag_seconds"
            for sample in family.samples
        ]
        if values:
            lags[name] = round(max(lags.get(name, 0.0), *values), 2)
    return lags


def start_cluster(state: Path) -> LocalCluster:
    """A 3-node cluster on free ports, running."""
    ports = [(free_port(), free_port()) for _ in range(3)]
    settings = load_settings(broker={"brokers": 3, "state_dir": state, "heap": "256m"})
    cluster = LocalCluster(settings, ports=ports)
    cluster.start()
    return cluster


def main() -> int:
    """Run the soak; print samples and the summary; exit 1 on a lost or duplicated frame."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of cameras")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--fps", type=float, default=25.0, help="per camera (overload)")
    parser.add_argument("--kill-every", type=float, default=120.0, help="s between detector kills")
    parser.add_argument("--broker-restart-at", type=float, default=300.0, help="s into the run")
    parser.add_argument("--broker-down", type=float, default=15.0, help="s the broker stays down")
    parser.add_argument("--sample-every", type=float, default=15.0, help="s between samples")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tierflow-soak-"))
    cluster = start_cluster(work / "kafka")
    prefix = f"soak-{uuid.uuid4().hex[:6]}"
    contract = Contract.of(
        load_settings(
            bootstrap_servers=cluster.bootstrap, broker={"brokers": 3}, topics={"prefix": prefix}
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_")},
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "TIERFLOW_BROKER__BROKERS": "3",
        "TIERFLOW_TOPICS__PREFIX": prefix,
        "TIERFLOW_WORKERS__DATA_DIR": str(work / "workers"),
    }
    command = [
        *CLI, "up", "--json", "--cameras", str(args.cameras), "--fps", str(args.fps),
        "--duration", str(args.duration), "--output-dir", str(work / "annotated"),
    ]  # fmt: skip
    faults: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    up_log = (work / "up.log").open("wb")
    up = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=up_log, env=env)
    try:
        start = time.monotonic()
        next_kill, next_sample = args.kill_every, 0.0
        broker_down: tuple[int, float] | None = None
        broker_done = False
        while up.poll() is None:
            t = time.monotonic() - start
            workers = live_workers(work / "logs")
            if t >= next_kill and t < args.duration:
                detectors = [pid for pid, name in workers.items() if name.startswith("detect")]
                if detectors:
                    victim = max(detectors, key=cpu_ticks)
                    os.kill(victim, signal.SIGKILL)
                    faults.append({"t_s": round(t, 1), "killed": workers[victim], "pid": victim})
                next_kill += args.kill_every
            if not broker_done and broker_down is None and t >= args.broker_restart_at:
                leaders = cluster.leaders(contract.catalogue.names)
                index = max(range(3), key=lambda i: leaders.get(i + 1, 0))
                cluster.kill(index)
                broker_down = (index, t)
                faults.append({"t_s": round(t, 1), "killed": f"broker-{index + 1}"})
            if broker_down is not None and t >= broker_down[1] + args.broker_down:
                cluster.start(broker_down[0], wait=False)
                faults.append({"t_s": round(t, 1), "restarted": f"broker-{broker_down[0] + 1}"})
                broker_down, broker_done = None, True
            if t >= next_sample:
                rss = {name: rss_mib(pid) for pid, name in workers.items()}
                rss["up"] = rss_mib(up.pid)
                for i, pid in enumerate(cluster.pids()):
                    rss[f"broker-{i + 1}"] = None if pid is None else rss_mib(pid)
                try:
                    lag = stage_lags(contract) if broker_down is None else {}
                except Exception as exc:
                    lag = {}
                    print(json.dumps({"sample_error": str(exc)[:120]}), flush=True)
                sample = {"sample": round(t, 1), "rss_mib": rss, "lag_s": lag}
                samples.append(sample)
                print(json.dumps(sample), flush=True)
                next_sample += args.sample_every
            time.sleep(0.5)
        out, _ = up.communicate(timeout=600)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=120)
        cluster.stop()
    up_log.close()
    if not out.strip():
        tail = (work / "up.log").read_text(errors="replace")[-3000:]
        sys.exit(f"tierflow up printed no summary (exit {up.returncode}); its log:\n{tail}")
    summary: dict[str, Any] = json.loads(out)
    totals = summary.get("totals", {})
    return report(args, work, faults, samples, totals, up.returncode)


def report(
    args: argparse.Namespace,
    work: Path,
    faults: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    totals: dict[str, Any],
    exit_code: int | None,
) -> int:
    """Print the summary line; 0 when nothing was lost or duplicated."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    peak_lag: dict[str, float] = {}
    for sample in samples:
        for name, mib in sample["rss_mib"].items():
            if mib is not None:
                first.setdefault(name, mib)
                last[name] = mib
        for name, lag in sample["lag_s"].items():
            if isinstance(lag, float | int):
                peak_lag[name] = max(peak_lag.get(name, 0.0), lag)
    unaccounted = totals.get("unaccounted")
    duplicates = totals.get("duplicates")
    summary = {
        "bench": "chaos_soak",
        "duration_s": args.duration,
        "cameras": args.cameras,
        "fps": args.fps,
        "faults": faults,
        "rss_mib_first_last": {k: [first[k], last[k]] for k in sorted(last)},
        "lag_s_max": peak_lag,
        "produced": totals.get("produced"),
        "processed": totals.get("processed"),
        "sampled": totals.get("sampled"),
        "dropped": totals.get("dropped"),
        "deadlettered": totals.get("deadletter_reasons"),
        "max_gap_s": totals.get("max_gap_s"),
        "unaccounted": unaccounted,
        "duplicates": duplicates,
        "up_exit": exit_code,
        "work_dir": str(work),
    }
    print(json.dumps(summary))
    return 0 if unaccounted == 0 and duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

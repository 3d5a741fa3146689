"""``tierflow up`` under faults and changes: SIGKILL of a worker, Ctrl-C, a migration.

The assertions are the accounting: every produced frame has exactly one outcome (a frame
counted twice would make the sum exceed what was produced), and the run ends with exit 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.waiting import eventually
from tierflow.settings import load_settings
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.records import PlacementRecord

pytestmark = pytest.mark.kafka

RUNNING = re.compile(r"service running \(pid (\d+)\)")


def environment(kafka_bootstrap: str, tmp_path: Path, prefix: str | None = None) -> dict[str, str]:
    """This test's cluster, topic prefix and state folder."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": prefix or f"fail-{uuid.uuid4().hex[:8]}",
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path / "workers"),
    }


def start_up(
    kafka_bootstrap: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``tierflow up --json`` in a session of its own, as a terminal would run it."""
    env = env or environment(kafka_bootstrap, tmp_path)
    command = [
        sys.executable, "-m", "tierflow.streams.cli", "up", "--json", "--no-control",
        "--cameras", "2", "--fps", "5", "--qualities", "416", "--quality", "416",
        "--output-dir", str(tmp_path / "annotated"), *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def annotated(tmp_path: Path) -> int:
    """Annotated frames stored so far: the pipeline processes frames end to end."""
    return sum(1 for _ in (tmp_path / "annotated").rglob("*.jpg"))


def worker_pid(tmp_path: Path, name: str, logs: str = "logs") -> int:
    """The pid the worker logged when it came up (the latest start)."""
    log = tmp_path / logs / f"{name}.log"
    found = RUNNING.findall(log.read_text(errors="replace")) if log.is_file() else []
    return int(found[-1]) if found else 0


def finish(up: subprocess.Popen[str], timeout_s: float = 240) -> dict[str, Any]:
    out, err = up.communicate(timeout=timeout_s)
    assert up.returncode == 0, (out[-3000:], err[-3000:])
    summary: dict[str, Any] = json.loads(out)
    return summary


def assert_every_frame_once(summary: dict[str, Any]) -> None:
    assert summary["all_accounted"] is True, summary["totals"]
    for source, entry in summary["sources"].items():
        ended = (
            entry["processed"]
            + entry["sampled"]
            + sum(entry["dropped"].values())
            + entry["deadlettered"]
        )
        assert ended == entry["produced"] > 0, (source, entry)
        assert entry["unaccounted"] == 0, (source, entry)


def test_a_detector_killed_with_sigkill_is_restarted_and_no_frame_is_lost(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    up = start_up(kafka_bootstrap, tmp_path, "--duration", "20")
    try:
        eventually(lambda: annotated(tmp_path), lambda n: n >= 10, timeout_s=150)
        first = worker_pid(tmp_path, "detect-416")
        assert first > 0
        os.kill(first, signal.SIGKILL)
        eventually(lambda: worker_pid(tmp_path, "detect-416"), lambda p: p not in (0, first))
        before = annotated(tmp_path)
        eventually(lambda: annotated(tmp_path), lambda n: n > before + 5, timeout_s=60)
    finally:
        summary = finish(up)
    assert summary["workers"]["detect-416"]["restarts"] == 1
    assert_every_frame_once(summary)
    # Loose: a restart takes a few seconds on a loaded 2-core machine; bench/failover.py
    # prints the measured gap.
    assert summary["totals"]["max_gap_s"] < 15, summary["totals"]


def test_ctrl_c_stops_the_cameras_drains_and_exits_cleanly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    up = start_up(kafka_bootstrap, tmp_path, "--duration", "120")
    try:
        eventually(lambda: annotated(tmp_path), lambda n: n >= 10, timeout_s=150)
    finally:
        os.killpg(up.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the whole group
        summary = finish(up)
    assert summary["duration_s"] < 100
    assert_every_frame_once(summary)
    assert all(w["exit"] == 0 and w["restarts"] == 0 for w in summary["workers"].values())


def test_a_detector_migrates_to_another_node_make_before_break(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"mig-{uuid.uuid4().hex[:8]}"
    env = environment(kafka_bootstrap, tmp_path, prefix)
    up = start_up(
        kafka_bootstrap, tmp_path, "--duration", "30", env={**env, "TIERFLOW_DATAPLANE__NODE": "a"}
    )
    node_b: subprocess.Popen[bytes] | None = None
    node_log = tmp_path / "node-b.log"
    try:
        eventually(lambda: annotated(tmp_path), lambda n: n >= 10, timeout_s=150)  # topics exist
        with node_log.open("wb") as out:
            node_b = subprocess.Popen(
                [sys.executable, "-m", "tierflow.streams.cli", "-v", "node", "--node", "b",
                 "--log-dir", str(tmp_path / "logs-b")],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        settings = load_settings(bootstrap_servers=kafka_bootstrap, topics={"prefix": prefix})
        move_detector(Contract.of(settings), to="b")
        eventually(lambda: worker_pid(tmp_path, "detect-416", "logs-b"), bool, timeout_s=60)
        stopped = tmp_path / "logs" / "detect-416.log"
        eventually(lambda: "service stopped" in stopped.read_text(), bool, timeout_s=60)
        before = annotated(tmp_path)
        eventually(lambda: annotated(tmp_path), lambda n: n > before + 10, timeout_s=60)
    finally:
        summary = finish(up)
        if node_b is not None:
            node_b.send_signal(signal.SIGTERM)
            node_b.wait(timeout=60)
    node_err = node_log.read_text(errors="replace")
    assert node_b is not None and node_b.returncode == 0, node_err[-3000:]
    assert "started detect-416" in node_err
    assert summary["workers"]["detect-416"] == {"exit": 0, "restarts": 0}  # retired on a
    assert_every_frame_once(summary)
    assert summary["totals"]["max_gap_s"] < 15, summary["totals"]


def move_detector(contract: Contract, to: str) -> None:
    """Publish a newer placement: the pipeline on node a, its detector on node ``to``."""
    epoch = time.time_ns() // 1_000_000
    producer = Producer(producer_config(contract, "test-placement"))
    for task, node in (("resize", "a"), ("detect-416", to), ("draw", "a")):
        record = PlacementRecord(
            instance=f"{task}#0", task=task, node=node, tier="edge", share=1.0,
            epoch=epoch, policy="test",
        )  # fmt: skip
        producer.produce(contract.names.placement, key=record.instance, value=record.to_bytes())
    assert producer.flush(10) == 0


def test_a_node_agent_waits_for_the_topics_and_stops_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = environment(kafka_bootstrap, tmp_path)  # a prefix nobody created topics for
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        node = subprocess.Popen(
            [sys.executable, "-m", "tierflow.streams.cli", "node", "--node", "early"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        eventually(lambda: "waiting for the topics" in log.read_text(), bool, timeout_s=60)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)
    assert node.returncode == 0, log.read_text()[-2000:]

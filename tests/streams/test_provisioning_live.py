"""Provisioning by demand through the real broker: a node agent, the control agent, cameras.

A camera asks for a quality no detector serves; its first frames are deadlettered
``no-consumer`` until the control agent's back end has the node agent start one. A second
camera then asks for another quality on a node with memory for one detector: Mode 1 evicts
the idle one (seed 003, §4.3). Every frame of both cameras ends in exactly one outcome.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.waiting import eventually
from tierflow.settings import load_settings
from tierflow.topics.contract import Contract
from tierflow.topics.records import (
    FrameRecord,
    PlacementRecord,
    parse_frame_records,
    parse_record,
)
from tierflow.topics.snapshot import read_to_end

pytestmark = pytest.mark.kafka

CLI = [sys.executable, "-m", "tierflow.streams.cli"]
# resize and draw take 256 MB each, a detector 1024 MB: room for one detector.
ONE_DETECTOR_MB = 2 * 256 + 1024 + 100


def _outcomes(contract: Contract) -> list[FrameRecord]:
    """The outcome records on metrics.frames so far."""
    records: list[FrameRecord] = []
    read_to_end(
        contract,
        [contract.names.metrics_frames],
        lambda m: records.extend(parse_frame_records(m.value())),
    )
    return records


def _placed(contract: Contract) -> set[str]:
    """Tasks of the current placement (the compacted topic read to its end)."""
    latest: dict[bytes | None, bytes | None] = {}
    read_to_end(contract, [contract.names.placement], lambda m: latest.update({m.key(): m.value()}))
    return {parse_record(PlacementRecord, v).task for v in latest.values() if v is not None}


def _running(logs: Path, name: str) -> bool:
    log = logs / f"{name}.log"
    return log.is_file() and "service running" in log.read_text(errors="replace")


def _camera(env: dict[str, str], source: str, quality: int) -> dict[str, int]:
    out = subprocess.run(
        [*CLI, "camera", "--no-follow", "--id", source, "--quality", str(quality),
         "--fps", "5", "--frames", "40"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    stats: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return stats


def test_frames_provision_their_detector_and_mode_1_evicts_the_idle_one(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"prov-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": prefix,
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path / "workers"),
        "TIERFLOW_DATAPLANE__OUTPUT_DIR": str(tmp_path / "annotated"),
        "TIERFLOW_DATAPLANE__NODE": "edge",
        "TIERFLOW_DATAPLANE__MEMORY_MB": str(ONE_DETECTOR_MB),
        "TIERFLOW_CONTROL__PROVISION": "demand",
        "TIERFLOW_CONTROL__PLACEMENT_MODE": "1",
        "TIERFLOW_CONTROL__DEMAND_S": "2",
        "TIERFLOW_CONTROL__DETECT_QUALITIES": "[320, 416]",
    }
    contract = Contract.of(
        load_settings(bootstrap_servers=kafka_bootstrap, topics={"prefix": prefix})
    )
    subprocess.run(
        [*CLI, "topics", "create"], env=env, check=True, capture_output=True, timeout=120
    )
    node_log, control_log = tmp_path / "node.log", tmp_path / "control.log"
    with node_log.open("wb") as n, control_log.open("wb") as c:
        node = subprocess.Popen(
            [*CLI, "-v", "node", "--node", "edge", "--log-dir", str(tmp_path / "logs")],
            stdout=n, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        control = subprocess.Popen(
            [*CLI, "-v", "worker", "control"],
            stdout=c, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        # Nothing is demanded yet: resize and draw only.
        eventually(lambda: "service running" in control_log.read_text(), bool, timeout_s=120)
        eventually(lambda: _placed(contract), lambda t: t == {"resize", "draw"}, timeout_s=60)
        logs = tmp_path / "logs"
        for stage in ("resize", "draw"):
            eventually(functools.partial(_running, logs, stage), bool, timeout_s=120)
        a = _camera(env, "cam-a", 320)
        assert "detect-320" in _placed(contract)
        b = _camera(env, "cam-b", 416)
        eventually(lambda: _placed(contract), lambda t: "detect-416" in t, timeout_s=60)
        produced = {"cam-a": a["produced"], "cam-b": b["produced"]}
        total = sum(produced.values())
        records = eventually(lambda: _outcomes(contract), lambda r: len(r) >= total, timeout_s=120)
    finally:
        for process in (control, node):
            process.send_signal(signal.SIGTERM)
        for process in (control, node):
            process.wait(timeout=90)
    control_text = control_log.read_text(errors="replace")
    assert "evicted detect-320" in control_text, control_text[-3000:]
    assert _placed(contract) == {"resize", "detect-416", "draw"}
    seen = Counter((r.source, r.sequence) for r in records)
    for source, count in produced.items():
        mine = {seq: n for (src, seq), n in seen.items() if src == source}
        assert sorted(mine) == list(range(count)), (source, sorted(mine)[:5], count)
        assert set(mine.values()) == {1}, source  # exactly one outcome each
    outcomes = Counter((r.source, r.outcome.value) for r in records)
    # The first frames of each waited for their detector (no-consumer), later ones had it.
    assert outcomes[("cam-a", "processed")] > 0, outcomes
    assert outcomes[("cam-b", "processed")] > 0, outcomes
    assert node.returncode == 0, node_log.read_text(errors="replace")[-3000:]

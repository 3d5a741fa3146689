"""The real Prometheus (Debian's package) scraping a running pipeline started by tierflow up.

Every PromQL expression of every dashboard panel is evaluated through Prometheus's HTTP
API and must return data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.brokers import free_port
from tierflow.grafana.dashboards import panel_queries
from tierflow.infra.prometheus import LocalPrometheus, Target, write_targets
from tierflow.settings import PrometheusSettings, load_settings

pytestmark = pytest.mark.kafka


def _until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


def test_targets_file_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    targets = [Target("127.0.0.1:1234", {"service": "draw", "stage": "draw"})]
    assert write_targets(path, targets) is True
    assert write_targets(path, targets) is False
    written = json.loads(path.read_text())
    assert written == [
        {"targets": ["127.0.0.1:1234"], "labels": {"service": "draw", "stage": "draw"}}
    ]


def test_a_missing_prometheus_binary_is_named(tmp_path: Path) -> None:
    from tierflow.infra.errors import ToolMissingError

    settings = PrometheusSettings(binary="no-such-prometheus", state_dir=tmp_path)
    with pytest.raises(ToolMissingError, match="no-such-prometheus"):
        LocalPrometheus(settings).start()


def test_every_dashboard_query_returns_data_from_a_running_pipeline(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERFLOW_TOPICS__PREFIX": f"prom-{uuid.uuid4().hex[:8]}",
        "TIERFLOW_WORKERS__DATA_DIR": str(tmp_path / "workers"),
        "TIERFLOW_PROMETHEUS__PORT": str(port),
        "TIERFLOW_PROMETHEUS__STATE_DIR": str(tmp_path / "prometheus"),
        "TIERFLOW_CONTROL__SLOT_S": "3",
    }
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
            "75",
            "--prometheus",
            "--json",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prometheus = LocalPrometheus(load_settings(prometheus={"port": port}).prometheus)
    try:
        _until(lambda: up.poll() is not None or prometheus.ready(), 180, "Prometheus to start")
        assert up.poll() is None, up.communicate()[1][-3000:]
        e2e = "sum(rate(tierflow_end_to_end_seconds_count[30s]))"
        _until(lambda: bool(prometheus.query(e2e)), 120, "end-to-end latency samples")
        targets = prometheus.active_targets()
        services = {t["labels"]["service"]: t["health"] for t in targets}
        assert {"cameras", "resize", "draw", "control", "detect-512"} <= set(services)
        assert all(health == "up" for health in services.values()), services

        queries = panel_queries(rate_interval="30s")
        assert len(queries) >= 30
        empty: list[str] = []

        def all_have_data() -> bool:
            empty.clear()
            empty.extend(
                f"{q.dashboard_uid} / {q.panel_title}: {q.expr}"
                for q in queries
                if not prometheus.query(q.expr)
            )
            return not empty

        # Rates need two samples inside their window and the control agent one decision.
        deadline = time.monotonic() + 60
        while not all_have_data() and time.monotonic() < deadline:
            time.sleep(2)
        assert not empty, "queries without data:\n" + "\n".join(empty)

        # The $prefix variable: every target carries the run's prefix, and the queries
        # narrowed to it (as Grafana sends them with one prefix picked) still have data.
        prefix = env["TIERFLOW_TOPICS__PREFIX"]
        up_series = prometheus.query('up{job="tierflow"}')
        assert {s["metric"].get("prefix") for s in up_series} == {prefix}
        narrowed = [q.expr.replace('prefix=~".*"', f'prefix=~"{prefix}"') for q in queries]
        assert all(f'prefix=~"{prefix}"' in expr for expr in narrowed)
        assert not [expr for expr in narrowed if not prometheus.query(expr)]
        elsewhere = [q.expr.replace('prefix=~".*"', 'prefix=~"no-such-prefix"') for q in queries]
        per_source = next(e for e in elsewhere if "source_end_to_end" in e)
        assert not prometheus.query(per_source)
        # Per-source end-to-end latency: one series per camera.
        by_source = prometheus.query(
            f'sum by (source) (tierflow_source_end_to_end_seconds_count{{prefix="{prefix}"}})'
        )
        assert len(by_source) == 2, by_source
    finally:
        # Ctrl-C: up stops its cameras, drains every frame's outcome and still reports.
        up.send_signal(signal.SIGINT)
        out, err = up.communicate(timeout=300)
    assert up.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["all_accounted"] is True

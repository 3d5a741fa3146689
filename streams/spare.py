"""A hot spare: an interpreter with tierflow imported, waiting to become a worker.

A crashed worker's downtime is its successor's start-up, and about a third of that is
importing faust, OpenCV, pydantic and the stages (~1 s on this project's reference
machine). The :class:`~tierflow.streams.workers.Supervisor` keeps one spare per node ready;
on a crash it hands the spare the worker's command line, and the spare redirects its output
to the worker's log and runs it.

Protocol: one JSON line on stdin, ``{"argv": [...], "log": path, "env": {...}}``; the
environment entries are applied before the settings are read. End of input without a line
(the supervisor stopping) exits quietly.

    python -m tierflow.streams.spare
"""

from __future__ import annotations

import json
import os
import sys

# The imports a worker's start-up spends its time on, done before a crash needs them.
import cv2  # noqa: F401
import faust  # noqa: F401

import tierflow.streams.stages.control
import tierflow.streams.stages.detect
import tierflow.streams.stages.draw
import tierflow.streams.stages.resize  # noqa: F401
from tierflow.streams.cli import main as tierflow_main


def become() -> int:
    """Wait for the command line, then run it as ``tierflow`` with its log as output."""
    line = sys.stdin.readline()
    if not line:
        return 0
    order = json.loads(line)
    os.environ.update(order.get("env", {}))
    log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return tierflow_main(order["argv"])


if __name__ == "__main__":
    sys.exit(become())

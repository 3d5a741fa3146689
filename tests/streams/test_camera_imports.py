"""A camera is light enough for an edge device: it imports neither faust nor aiokafka."""

from __future__ import annotations

import subprocess
import sys


def test_the_camera_module_loads_without_faust_or_aiokafka() -> None:
    code = (
        "import sys, tierflow.streams.camera, tierflow.streams.capture; "
        "print(sorted(m for m in ('faust', 'aiokafka', 'mode') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"

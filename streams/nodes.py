"""This machine as a node of the continuum: its ``control.nodes`` announcement.

Cores and memory are read from the operating system; tier, latency and bandwidth are
declared in the settings (``dataplane``) because one machine may emulate any tier.
"""

from __future__ import annotations

import os
from pathlib import Path

from tierflow.settings import Settings
from tierflow.topics.records import NodeAnnouncement


def _meminfo_mb() -> tuple[float, float]:
    """(total, in use) main memory in MB from /proc/meminfo; (0, 0) where it is missing."""
    try:
        fields = {
            line.split(":")[0]: float(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if len(line.split()) >= 2
        }
    except OSError:
        return 0.0, 0.0
    total = fields.get("MemTotal", 0.0) / 1024
    available = fields.get("MemAvailable", fields.get("MemFree", 0.0)) / 1024
    return total, total - available


def local_node(settings: Settings, now_ns: int) -> NodeAnnouncement:
    """The announcement of the machine this process runs on."""
    dp = settings.dataplane
    total_mb, used_mb = _meminfo_mb()
    return NodeAnnouncement(
        node=dp.node,
        tier=dp.tier,
        cores=float(os.cpu_count() or 1),
        memory_mb=total_mb,
        latency_ms=dp.latency_ms,
        bandwidth_mbps=dp.bandwidth_mbps,
        used_cores=os.getloadavg()[0],
        used_memory_mb=used_mb,
        heartbeat_ns=now_ns,
        ttl_s=dp.registry_ttl_s,
    )

"""This machine as a node of the continuum: its ``control.nodes`` announcement.

Cores, memory (the cgroup's limit where lower, or ``dataplane.memory_mb``), free disk and an
NVIDIA accelerator are read from the operating system;
tier, latency and bandwidth are declared in the settings (``dataplane``) because one machine
may emulate any tier.
"""

from __future__ import annotations

import os
import shutil
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


def _cgroup_memory_mb() -> float | None:
    """This process's cgroup memory limit, MB (v2 ``memory.max``, v1 ``memory.limit_in_bytes``).

    None without a limit (v1 reports "no limit" as a number near 2**63, above any RAM).
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":
            limit = Path("/sys/fs/cgroup", path.lstrip("/"), "memory.max")
        elif "memory" in controllers.split(","):
            limit = Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.limit_in_bytes")
        else:
            continue
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text) / 2**20
    return None


def _free_disk_mb(path: Path) -> float:
    """Free space of the file system holding ``path`` (or its nearest existing parent), MB."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free / 1e6
    return 0.0


def _accelerator() -> str | None:
    """``cuda`` where the NVIDIA driver is loaded (its /proc entry), else None."""
    return "cuda" if Path("/proc/driver/nvidia/version").is_file() else None


class CpuMeter:
    """Cores busy on this machine since the last reading, from ``/proc/stat``.

    The control plane plans a node's cores with what its frames cost; what else runs there
    (the broker, the cameras, the services' own event loops) is this measure minus that.
    Where ``/proc/stat`` is missing, the 1-minute load average stands in.
    """

    def __init__(self) -> None:
        self._last = _cpu_jiffies()

    def used_cores(self) -> float:
        """Busy cores averaged since the previous call (or since construction)."""
        now = _cpu_jiffies()
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return os.getloadavg()[0]
        idle, total = now[0] - last[0], now[1] - last[1]
        return (1.0 - idle / total) * float(os.cpu_count() or 1)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(idle, total) jiffies of every CPU since boot; None where /proc/stat is missing."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields)


def local_node(settings: Settings, now_ns: int, meter: CpuMeter | None = None) -> NodeAnnouncement:
    """The announcement of the machine this process runs on.

    Args:
        settings: where the node sits (tier, declared latency and bandwidth).
        now_ns: the time of the announcement.
        meter: measures the busy cores since its last reading (load average without one).
    """
    dp = settings.dataplane
    total_mb, used_mb = _meminfo_mb()
    limit_mb = _cgroup_memory_mb()
    if limit_mb is not None:
        total_mb = min(total_mb, limit_mb)
    return NodeAnnouncement(
        node=dp.node,
        tier=dp.tier,
        cores=float(os.cpu_count() or 1),
        memory_mb=dp.memory_mb if dp.memory_mb is not None else total_mb,
        storage_mb=_free_disk_mb(dp.output_dir.resolve()),
        accelerator=_accelerator(),
        latency_ms=dp.latency_ms,
        bandwidth_mbps=dp.bandwidth_mbps,
        used_cores=meter.used_cores() if meter is not None else os.getloadavg()[0],
        used_memory_mb=used_mb,
        heartbeat_ns=now_ns,
        ttl_s=dp.registry_ttl_s,
    )

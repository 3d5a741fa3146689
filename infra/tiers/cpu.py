"""CPU quotas per emulated host with cgroups (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``).

Also the weight (v2 ``cpu.weight``, v1 ``cpu.shares``) in proportion to the cores, for when
the machine is busier than the quotas add up to.

A host of ``c`` cores may run ``c * period`` microseconds of CPU per period, whatever the
number of its processes: the CFS bandwidth controller, the mechanism containers use for
``--cpus``. Processes join a host's group by writing their pid to its ``cgroup.procs``
(:func:`join_command` does it before ``exec``, so nothing the host starts escapes it).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from pathlib import Path

from tierflow.infra.errors import InfraError

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "tierflow-tiers"
PERIOD_US = 100_000
"""CFS period, microseconds (the kernel's default)."""
REMOVE_TIMEOUT_S = 10.0
"""Seconds killed processes get to leave a group before its removal fails."""


def _v2() -> bool:
    controllers = CGROUP_ROOT / "cgroup.controllers"
    return controllers.is_file() and "cpu" in controllers.read_text().split()


def parent() -> Path:
    """The cgroup under which every host's group lives (created when missing).

    Raises:
        InfraError: neither cgroup v2 with the cpu controller nor v1's cpu hierarchy is
            mounted (the message says what was looked for).
    """
    try:
        if _v2():
            group = CGROUP_ROOT / GROUP
            group.mkdir(exist_ok=True)
            subtree = group / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
            return group
        v1 = CGROUP_ROOT / "cpu"
        if (v1 / "cpu.cfs_quota_us").is_file():
            group = v1 / GROUP
            group.mkdir(exist_ok=True)
            return group
    except OSError as exc:
        msg = f"cannot make the cgroup {GROUP} for CPU quotas: {exc.strerror} ({exc.filename})"
        raise InfraError(msg) from exc
    msg = (
        f"no cgroup cpu controller: neither {CGROUP_ROOT}/cgroup.controllers lists cpu (v2) "
        f"nor {CGROUP_ROOT}/cpu/cpu.cfs_quota_us exists (v1); CPU shares per tier need one"
    )
    raise InfraError(msg)


def group_of(name: str) -> Path:
    """The group of host ``name`` (not created)."""
    return parent() / name


def create(name: str, cores: float) -> Path:
    """The group of host ``name`` limited to ``cores`` (inf: no limit); returns its path."""
    group = group_of(name)
    group.mkdir(exist_ok=True)
    quota = "max" if math.isinf(cores) else str(max(1000, round(cores * PERIOD_US)))
    # The weight follows the cores too, so hosts competing with the rest of the machine
    # keep their ratio instead of splitting what is left evenly.
    share = 1.0 if math.isinf(cores) else cores
    try:
        if (group / "cpu.max").exists():
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (group / "cpu.weight").write_text(str(max(1, min(10_000, round(100 * share)))))
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text("-1" if quota == "max" else quota)
            (group / "cpu.shares").write_text(str(max(2, round(1024 * share))))
    except OSError as exc:
        msg = f"cannot set the CPU quota of {group}: {exc.strerror}"
        raise InfraError(msg) from exc
    return group


def quota_cores(name: str) -> float:
    """The cores host ``name``'s group may use now (inf when unlimited)."""
    group = group_of(name)
    if (group / "cpu.max").exists():
        quota, period = (group / "cpu.max").read_text().split()
        return math.inf if quota == "max" else int(quota) / int(period)
    quota_us = int((group / "cpu.cfs_quota_us").read_text())
    period_us = int((group / "cpu.cfs_period_us").read_text())
    return math.inf if quota_us < 0 else quota_us / period_us


def usage_s(name: str) -> float:
    """CPU seconds host ``name``'s processes have used since the group was made."""
    group = group_of(name)
    stat = group / "cpu.stat"
    if (group / "cpu.max").exists():
        for line in stat.read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
    usage = CGROUP_ROOT / "cpuacct" / GROUP / name / "cpuacct.usage"
    return int(usage.read_text()) / 1e9 if usage.is_file() else math.nan


def pids(name: str) -> list[int]:
    """Processes in host ``name``'s group."""
    procs = group_of(name) / "cgroup.procs"
    if not procs.is_file():
        return []
    return [int(p) for p in procs.read_text().split()]


def remove(name: str) -> bool:
    """Kill what runs in host ``name``'s group and remove it; True when it existed."""
    group = group_of(name)
    if not group.is_dir():
        return False
    # rmdir fails while a process is in the group; killed ones leave soon, and a child
    # forked in between is found and killed on the next round.
    deadline = time.monotonic() + REMOVE_TIMEOUT_S
    while True:
        for pid in pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            group.rmdir()
            return True
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    msg = f"cannot remove {group}: processes {pids(name)} are still in it"
    raise InfraError(msg)


def join_command(name: str) -> list[str]:
    """A command prefix that moves itself into host ``name``'s group, then execs the rest."""
    procs = group_of(name) / "cgroup.procs"
    return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "tierflow-tier"]

"""Network namespaces, veth links and token-bucket shaping with iproute2 (``ip``, ``tc``).

Each host of a continuum is a namespace with one veth link to the host namespace, where
the broker and the proxies run. Bandwidth is shaped with ``tbf`` on both ends' egress
(the namespace end shapes what the host sends, the host end what it receives), at the
route's bandwidth. Delay is not added here: this machine's kernel has no ``netem``
(``tc qdisc add ... netem`` answers "Specified qdisc kind is unknown"), so the proxy adds it
(:mod:`.toxiproxy`).

Every command runs as root; a missing capability is an :class:`InfraError` that says which.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

from tierflow.infra.errors import InfraError, ToolMissingError
from tierflow.infra.tiers.plan import HostPlan

TBF_LATENCY_MS = 2000
"""How long a packet may wait in a link's token bucket before it is dropped, ms.

Large: a link must queue a burst of frames (as a slow uplink does), not drop and make TCP
back off, which would measure TCP's recovery instead of S/w."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one iproute2 command; InfraError with its stderr when it fails and ``check``."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        msg = f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}"
        raise InfraError(msg)
    return result


def check_capabilities() -> None:
    """InfraError naming what this machine lacks to emulate tiers (root, ip, tc, netns)."""
    for program in ("ip", "tc"):
        if shutil.which(program) is None:
            msg = f"'{program}' is not installed (Debian package iproute2); tiers need it"
            raise ToolMissingError(msg)
    if os.geteuid() != 0:
        msg = "emulated tiers need root: network namespaces, links and CPU quotas are the kernel's"
        raise InfraError(msg)
    probe = "tierflow-probe"
    result = run("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        msg = f"this machine cannot create network namespaces: {result.stderr.strip()}"
        raise InfraError(msg)
    run("ip", "netns", "delete", probe, check=False)


def namespaces() -> set[str]:
    """Names of the network namespaces that exist now."""
    out = run("ip", "netns", "list").stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def links() -> set[str]:
    """Names of the host namespace's interfaces."""
    out = run("ip", "-o", "link", "show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def shape(device: str, mbps: float, burst_bytes: int, netns: str | None = None) -> None:
    """``tbf`` at ``mbps`` Mbit/s on ``device``'s egress (nothing when ``mbps`` is inf)."""
    if math.isinf(mbps):
        return
    prefix = ["ip", "netns", "exec", netns] if netns else []
    kbit = max(8, round(mbps * 1000))
    run(
        *prefix,
        "tc",
        "qdisc",
        "replace",
        "dev",
        device,
        "root",
        "tbf",
        "rate",
        f"{kbit}kbit",
        "burst",
        str(burst_bytes),
        "latency",
        f"{TBF_LATENCY_MS}ms",
    )


def create_host(host: HostPlan, burst_bytes: int) -> None:
    """The host's namespace and its shaped link, addressed; idempotent (made afresh)."""
    delete_host(host)
    ns = host.netns
    run("ip", "netns", "add", ns)
    run("ip", "link", "add", host.host_if, "type", "veth", "peer", "name", host.node_if)
    run("ip", "link", "set", host.node_if, "netns", ns)
    run("ip", "addr", "add", f"{host.host_ip}/24", "dev", host.host_if)
    run("ip", "link", "set", host.host_if, "up")
    inside = ("ip", "netns", "exec", ns)
    run(*inside, "ip", "addr", "add", f"{host.node_ip}/24", "dev", host.node_if)
    run(*inside, "ip", "link", "set", host.node_if, "up")
    run(*inside, "ip", "link", "set", "lo", "up")
    run(*inside, "ip", "route", "add", "default", "via", host.host_ip)
    shape(host.node_if, host.mbps, burst_bytes, netns=ns)  # what the host sends
    shape(host.host_if, host.mbps, burst_bytes)  # what it receives


def delete_host(host: HostPlan) -> bool:
    """Remove the host's namespace and link; True when something was there."""
    found = False
    if host.netns in namespaces():
        # Deleting the namespace deletes its veth end, and with it the pair.
        run("ip", "netns", "delete", host.netns)
        found = True
    if host.host_if in links():
        # Gone already when the namespace's deletion took the pair with it.
        result = run("ip", "link", "delete", host.host_if, check=False)
        if result.returncode != 0 and "Cannot find device" not in result.stderr:
            msg = f"ip link delete {host.host_if} failed: {result.stderr.strip()}"
            raise InfraError(msg)
        found = True
    return found


def link_state(host: HostPlan) -> dict[str, str]:
    """The qdiscs on both ends of the host's link, as ``tc`` prints them."""
    outside = run("tc", "qdisc", "show", "dev", host.host_if, check=False).stdout.strip()
    inside = run(
        "ip", "netns", "exec", host.netns, "tc", "qdisc", "show", "dev", host.node_if, check=False
    ).stdout.strip()
    return {"receive": outside, "send": inside}

"""The ``[tiers]`` settings section: where an emulated continuum puts its broker and proxies.

A leaf module (pydantic only) so that :mod:`tierflow.settings` can hold it as a section
without importing the code that starts namespaces.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tierflow.homes import cache_home, state_home

Port = Annotated[int, Field(gt=0, lt=65536)]


class TierSettings(BaseModel):
    """The emulated continuum of ``tierflow tiers`` (one at a time on a machine)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str = Field(
        default="tf",
        pattern=r"^[a-z]{1,6}$",
        description=(
            "Prefix of the continuum's namespaces (tag-node), interfaces (tagh1, tagn1) and "
            "CPU groups, so two continuums (a test's and yours) never share a name."
        ),
    )
    subnet: str = Field(
        default="10.77.0.0/16",
        description=(
            "IPv4 /16 the hosts' links take addresses from: host i gets a.b.i.1 (the broker's "
            "side of its link) and a.b.i.2 (inside its namespace)."
        ),
    )
    broker_port: Port = Field(default=19092, description="The continuum broker's own listener.")
    controller_port: Port = Field(default=19093, description="Its KRaft controller listener.")
    listener_base: Port = Field(
        default=19100,
        description="Host i's broker listener is listener_base + i on 127.0.0.1, behind its proxy.",
    )
    proxy_port: Port = Field(
        default=9092, description="Where each host reaches the broker: a.b.i.1:proxy_port."
    )
    api_port: Port = Field(default=18474, description="Toxiproxy's HTTP API on 127.0.0.1.")
    toxiproxy_version: str = Field(
        default="2.12.0", description="Toxiproxy built with go install into bin_dir."
    )
    bin_dir: Path = Field(
        default_factory=lambda: cache_home() / "bin", description="Where toxiproxy is built."
    )
    state_dir: Path = Field(
        default_factory=lambda: state_home() / "tiers",
        description="The continuum's state file, broker and proxy logs.",
    )
    machine_cores: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Cores the largest node of a scenario gets (Table I scaled so that node has the "
            "whole machine); the machine's core count when unset."
        ),
    )
    burst_bytes: int = Field(
        default=16_384,
        ge=1_514,
        description="Token-bucket burst of each shaped link (small: S/w holds from 16 KiB on).",
    )

    @field_validator("subnet")
    @classmethod
    def _slash16(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError as exc:
            msg = f"tiers.subnet must be an IPv4 network such as 10.77.0.0/16: {exc}"
            raise ValueError(msg) from None
        if net.prefixlen != 16:
            msg = f"tiers.subnet must be a /16 (one /24 per host), got /{net.prefixlen}"
            raise ValueError(msg)
        return str(net)

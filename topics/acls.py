"""Who may write what: the ACLs of each tierflow role, for a broker that authorizes.

With an authorizer on the brokers (KRaft's ``StandardAuthorizer``) and
``allow.everyone.if.no.acl.found=false``, a principal may do only what an ACL allows. The
roles, and why:

- ``camera``: writes its frame topics (``frames.raw.*``) and the per-frame metrics of the
  frames it samples out, reads ``control.assignments``. It cannot forge an assignment, a
  placement, a detection or a registry entry: a compromised edge device can only send
  frames.
- ``controller``: the control agent. The only principal that writes
  ``control.assignments`` and ``control.placement``; reads everything else under the
  prefix (metrics, registry, nodes) and uses its consumer groups.
- ``worker``: stages and node agents. Everything under the prefix (frames, detections,
  deadletter, metrics, registry, nodes, their groups) except writing the two control
  topics, which is denied outright (a DENY outranks any ALLOW in Kafka's authorizer).

Topics are created by an administrator (``tierflow topics create`` run with a super
user's credentials), not by any role.
"""

from __future__ import annotations

import enum
import time
from typing import Literal, get_args

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from tierflow.topics.clients import admin_config
from tierflow.topics.contract import Contract
from tierflow.topics.errors import TopicAdminError
from tierflow.topics.names import TopicNames

Role = Literal["camera", "controller", "worker"]
ROLES: tuple[Role, ...] = get_args(Role)

FOLLOWER_GROUP_PREFIX = "tierflow-follower-"
"""Group ids of confluent-kafka followers (``ThreadFollower``): unique, never committed."""


def _binding(
    principal: str,
    resource: ResourceType,
    name: str,
    operation: AclOperation,
    *,
    prefixed: bool = False,
    deny: bool = False,
) -> AclBinding:
    return AclBinding(
        resource,
        name,
        ResourcePatternType.PREFIXED if prefixed else ResourcePatternType.LITERAL,
        principal,
        "*",
        operation,
        AclPermissionType.DENY if deny else AclPermissionType.ALLOW,
    )


def _everything(principal: str, resource: ResourceType, names: TopicNames) -> AclBinding:
    """ALL on every ``resource`` of this deployment: those named ``<prefix>.*``, or any."""
    if names.prefix:
        return _binding(principal, resource, f"{names.prefix}.", AclOperation.ALL, prefixed=True)
    return _binding(principal, resource, "*", AclOperation.ALL)


def role_acls(names: TopicNames, role: str, principal: str) -> list[AclBinding]:
    """The ACL bindings that give ``principal`` (``User:name``) the rights of ``role``.

    Raises:
        ValueError: an unknown role, or a principal not of the form ``User:name``.
    """
    if not principal.startswith("User:") or len(principal) <= len("User:"):
        msg = f"principal {principal!r} must look like User:<name>"
        raise ValueError(msg)
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    read, write, describe = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
    if role == "camera":
        raw = names.raw(0).removesuffix("0")  # "<prefix>.frames.raw."
        return [
            _binding(principal, topic, raw, write, prefixed=True),
            _binding(principal, topic, raw, describe, prefixed=True),
            _binding(principal, topic, names.metrics_frames, write),
            _binding(principal, topic, names.assignments, read),
            _binding(principal, topic, names.assignments, describe),
            _binding(principal, group, FOLLOWER_GROUP_PREFIX, read, prefixed=True),
        ]
    everything = [
        _everything(principal, topic, names),
        _everything(principal, group, names),
        _binding(principal, group, FOLLOWER_GROUP_PREFIX, read, prefixed=True),
    ]
    if role == "controller":
        return everything
    if role == "worker":
        return [
            *everything,
            _binding(principal, topic, names.assignments, write, deny=True),
            _binding(principal, topic, names.placement, write, deny=True),
        ]
    msg = f"unknown role {role!r}; roles: {', '.join(ROLES)}"
    raise ValueError(msg)


def row(binding: AclBinding) -> tuple[str, str, str, str, str]:
    """``(permission, operation, resource type, pattern, name)`` of a binding, for tables."""

    def label(value: object) -> str:
        return value.name if isinstance(value, enum.Enum) else str(value)

    return (
        label(binding.permission_type),
        label(binding.operation),
        label(binding.restype),
        label(binding.resource_pattern_type),
        binding.name,
    )


def grant(contract: Contract, role: str, principal: str, timeout_s: float = 30.0) -> int:
    """Create ``role``'s ACLs for ``principal`` on the contract's cluster (idempotent).

    Needs an administrator's credentials in ``contract.security`` (``ALTER`` on the cluster).

    Returns:
        How many bindings were created or already present.

    Raises:
        TopicAdminError: the broker refused them (no authorizer, or not an administrator).
    """
    bindings = role_acls(contract.names, role, principal)
    admin = AdminClient(admin_config(contract, "tierflow-acls"))
    futures = admin.create_acls(bindings, request_timeout=timeout_s)
    for binding, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            msg = f"the broker refused the ACL {binding}: {exc.args[0]}"
            raise TopicAdminError(msg) from exc
    _wait_visible(admin, principal, bindings, timeout_s)
    return len(bindings)


def _wait_visible(
    admin: AdminClient, principal: str, bindings: list[AclBinding], timeout_s: float
) -> None:
    """Block until the broker enforces ``bindings``.

    In KRaft the controller commits new ACLs and each broker applies them from the metadata
    log a moment later; a client let loose at once is refused for a few seconds.
    """
    wanted = set(bindings)
    # None matches any name and host; the stubs type them as str only.
    every = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        principal,
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout_s
    while not wanted <= set(admin.describe_acls(every).result(timeout=timeout_s)):
        if time.monotonic() >= deadline:
            msg = f"the ACLs of {principal} were created but not in force after {timeout_s:.0f} s"
            raise TopicAdminError(msg)
        time.sleep(0.1)

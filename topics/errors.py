"""Errors raised by the topic catalogue and the admin helpers."""

from tierflow.errors import TierflowError


class TopicAdminError(TierflowError):
    """A topic could not be created, altered or described on the cluster."""


class BrokerUnreachableError(TopicAdminError):
    """No broker answered a metadata request in time."""

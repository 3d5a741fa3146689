"""Errors raised while installing, starting or stopping real components."""

from tierflow.errors import TierflowError


class InfraError(TierflowError):
    """A component could not be installed, started or stopped."""


class ToolMissingError(InfraError):
    """A program the component needs (java, mvn) is not installed."""

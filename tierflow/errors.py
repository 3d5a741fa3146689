"""The one base class every tierflow error derives from.

Each package raises its own typed subclasses (``topics.errors``, ``infra.errors``...), so a
caller can catch everything tierflow raises with one ``except TierflowError`` while tests
and agents can still tell the cases apart.
"""

import enum


class TierflowError(Exception):
    """Base class of every error tierflow raises on purpose."""


class ConfigError(TierflowError):
    """A setting is missing, malformed or contradicts another one."""


class FrameProblem(enum.StrEnum):
    """What is wrong with a frame; the value is the reason written to ``deadletter``."""

    MISSING_HEADER = "missing-header"
    BAD_HEADER = "bad-header"
    WRONG_TYPE = "wrong-type"
    UNSUPPORTED_CONTENT = "unsupported-content-type"
    TRUNCATED_IMAGE = "truncated-image"
    UNDECODABLE_IMAGE = "undecodable-image"
    TOO_LARGE = "too-large"


class FrameFormatError(TierflowError):
    """A frame cannot be encoded or decoded: the one error bad frame input raises.

    Attributes:
        problem: the category, stable across releases (the deadletter reason).
        detail: a sentence naming the header, size or type at fault.
    """

    def __init__(self, problem: FrameProblem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail

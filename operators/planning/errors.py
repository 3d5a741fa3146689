"""The error the planning models raise on values they cannot work with.

Shared by the queueing model (:mod:`.queueing`), the accuracy model of eq. 4
(:mod:`.accuracy_model`) and the frame size of eq. 2 (:mod:`.network`).
"""

from tierflow.errors import TierflowError


class ModelError(TierflowError, ValueError):
    """A performance model was given values it cannot work with (negative rate, bad curve)."""

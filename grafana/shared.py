"""Constants more than one dashboard reads: outcome matchers and thresholds from settings.

Thresholds follow the code's defaults (:mod:`tierflow.settings`), not one machine's
environment, so the generated JSON is the same wherever it is generated.
"""

from __future__ import annotations

from tierflow.settings import ControlSettings, DataPlaneSettings

PROCESSED = 'outcome="processed"'
PRODUCED = 'outcome="produced"'
NOT_PRODUCED = 'outcome!~"produced|sampled"'  # a camera's drop policies (sampled is none)


def _default(model: type[ControlSettings | DataPlaneSettings], field: str) -> float:
    """A setting's default: thresholds follow the code's defaults, not one machine's env."""
    return float(model.model_fields[field].default)


SLO_P99_S = _default(ControlSettings, "slo_p99_s")
DEADLINE_S = _default(DataPlaneSettings, "deadline_s")
MAX_UTILISATION = _default(ControlSettings, "max_utilisation")
HEARTBEAT_S = _default(DataPlaneSettings, "heartbeat_s")
REGISTRY_TTL_S = _default(DataPlaneSettings, "registry_ttl_s")

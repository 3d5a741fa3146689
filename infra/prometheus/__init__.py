"""A real Prometheus (Debian's package) scraping tierflow's processes."""

from tierflow.infra.prometheus.server import LocalPrometheus, PrometheusError
from tierflow.infra.prometheus.targets import Target, targets_from_registry, write_targets

__all__ = ["LocalPrometheus", "PrometheusError", "Target", "targets_from_registry", "write_targets"]

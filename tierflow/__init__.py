"""tierflow: deep-learning video analytics across edge, fog and cloud on Apache Kafka.

The one import root. Its subpackages are the design card's top-level folders of the
repository (``tierflow/<name>`` links to ``<name>/``):

- ``tierflow.operators``: pure, broker-free computation (``vision``: frames, detectors,
  accuracy; ``planning``: performance models, HiGHS programs, placement, the control loop);
- ``tierflow.topics``: the Kafka contract (names, catalogue, limits, clients, envelope,
  records, admin);
- ``tierflow.streams``: the running system (faust services, cameras, control agent, CLI);
- ``tierflow.infra``: real components (the local Kafka broker, Prometheus);
- ``tierflow.grafana``: dashboards generated from code.

Beside them: ``tierflow.settings`` (the one typed settings object) and ``tierflow.errors``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tierflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

"""tierflow: cross-cutting core shared by every package (settings, errors, version).

The running system lives in the top-level packages the design card fixes:
``operators`` (pure computation), ``topics`` (Kafka contracts), ``streams`` (agents and
CLI) and ``infra`` (real components).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tierflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

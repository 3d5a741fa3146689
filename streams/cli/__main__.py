"""``python -m streams.cli``: the ``tierflow`` command."""

import sys

from tierflow.streams.cli import main

if __name__ == "__main__":  # not again in a spawned child (topics/group_probe.py)
    sys.exit(main())
